import { useState, type ReactNode } from "react";

/** A ticker box (applied on submit) and a date range; dates are sent as UTC midnights. */
export function FilterBar(props: {
  onApply: (f: { ticker: string; since: string; until: string }) => void;
  children?: ReactNode;
}) {
  const [ticker, setTicker] = useState("");
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  return (
    <form
      className="mb-3 flex flex-wrap items-end gap-2 text-xs text-slate-300"
      onSubmit={(e) => {
        e.preventDefault();
        props.onApply({ ticker: ticker.trim().toUpperCase(), since, until });
      }}
    >
      <label>
        Ticker
        <input data-testid="filter-ticker" className="input mt-1 block w-28 uppercase placeholder:normal-case" value={ticker} placeholder="any" onChange={(e) => setTicker(e.target.value)} />
      </label>
      <label>
        From
        <input type="date" className="input mt-1 block" value={since} onChange={(e) => setSince(e.target.value)} />
      </label>
      <label>
        To (before)
        <input type="date" className="input mt-1 block" value={until} onChange={(e) => setUntil(e.target.value)} />
      </label>
      {props.children}
      <button data-testid="filter-apply" className="btn-secondary" type="submit">
        Filter
      </button>
    </form>
  );
}

export function isoDay(value: string): string | undefined {
  return value ? `${value}T00:00:00Z` : undefined;
}
