// A button that downloads a file the engine makes, saying why when it cannot.
import { useState } from "react";
import { download } from "../api/client";

type Query = Record<string, string | number | boolean | null | undefined>;

export function DownloadButton(props: { path: string; query: Query; fileName: string; label: string; testId?: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  return (
    <span className="inline-flex items-center gap-2">
      <button
        type="button"
        data-testid={props.testId}
        disabled={busy}
        className="rounded bg-slate-700 px-3 py-1 text-sm text-slate-100 hover:bg-slate-600 disabled:opacity-50"
        onClick={() => {
          setBusy(true);
          setError(null);
          download(props.path, props.query, props.fileName)
            .catch((e: Error) => setError(e.message))
            .finally(() => setBusy(false));
        }}
      >
        {busy ? "Preparing…" : props.label}
      </button>
      {error && <span className="text-xs text-rose-400">{error}</span>}
    </span>
  );
}
