import { useEffect, useState } from "react";
import { getToken, setToken } from "../api/client";

/** The API token, asked for once and kept in this browser (localStorage). */
export function useToken(): string | null {
  const [token, set] = useState(getToken);
  useEffect(() => {
    const update = () => set(getToken());
    window.addEventListener("stonks-token", update);
    window.addEventListener("storage", update);
    return () => {
      window.removeEventListener("stonks-token", update);
      window.removeEventListener("storage", update);
    };
  }, []);
  return token;
}

export function TokenControl() {
  const token = useToken();
  const [open, setOpen] = useState(false);
  const [draft, setDraft] = useState("");
  return (
    <div className="relative">
      <button data-testid="token-button" className={token ? "btn-secondary" : "btn-primary"} onClick={() => setOpen(!open)}>
        {token ? "API token ✓" : "API token"}
      </button>
      {open && (
        <form
          className="absolute right-0 z-20 mt-2 w-80 rounded-lg border border-slate-700 bg-slate-900 p-3 shadow-xl"
          onSubmit={(e) => {
            e.preventDefault();
            setToken(draft.trim() || null);
            setDraft("");
            setOpen(false);
          }}
        >
          <label className="block text-xs text-slate-300">
            Bearer token for changes (pause, resume, configuration, backtests). Kept in this browser only.
            <input
              data-testid="token-input"
              type="password"
              autoComplete="off"
              className="input mt-2 w-full"
              placeholder={token ? "•••••• (saved) — paste a new one" : "paste STONKS_API_TOKEN"}
              value={draft}
              onChange={(e) => setDraft(e.target.value)}
            />
          </label>
          <div className="mt-2 flex justify-end gap-2">
            {token && (
              <button type="button" className="btn-secondary" onClick={() => { setToken(null); setOpen(false); }}>
                Forget
              </button>
            )}
            <button data-testid="token-save" type="submit" className="btn-primary">
              Save
            </button>
          </div>
        </form>
      )}
    </div>
  );
}
