import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

// base "./": the built files work at "/" (the engine's own server) and under "/trading/"
// (nginx in Kubernetes, seed task 22.3) alike.
export default defineConfig({
  base: "./",
  plugins: [react(), tailwindcss()],
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 1200 },
  server: {
    // `npm run dev`: the API of a locally running engine (./stonks demo or ./stonks serve).
    proxy: { "/api": process.env.STONKS_API_ORIGIN ?? "http://127.0.0.1:8000" },
  },
});
