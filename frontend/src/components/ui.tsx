import type { ReactNode } from "react";
import type { UseQueryResult } from "@tanstack/react-query";

export function Card(props: { title: string; subtitle?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string; testId?: string }) {
  return (
    <section data-testid={props.testId} className={`rounded-xl border border-slate-800 bg-slate-900/70 p-4 shadow-sm ${props.className ?? ""}`}>
      <header className="mb-3 flex flex-wrap items-baseline justify-between gap-2">
        <div>
          <h2 className="text-sm font-semibold tracking-wide text-slate-200 uppercase">{props.title}</h2>
          {props.subtitle && <p className="text-xs text-slate-400">{props.subtitle}</p>}
        </div>
        {props.actions && <div className="flex flex-wrap items-center gap-2">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

export function Stat(props: { label: string; value: ReactNode; hint?: ReactNode; testId?: string; valueClass?: string }) {
  return (
    <div className="rounded-lg border border-slate-800 bg-slate-950/50 px-3 py-2">
      <div className="text-[11px] font-medium tracking-wider text-slate-400 uppercase">{props.label}</div>
      <div data-testid={props.testId} className={`mt-0.5 text-xl font-semibold tabular-nums ${props.valueClass ?? "text-slate-100"}`}>
        {props.value}
      </div>
      {props.hint && <div className="mt-0.5 text-xs text-slate-400">{props.hint}</div>}
    </div>
  );
}

const BADGE = {
  green: "bg-emerald-500/15 text-emerald-300 ring-emerald-500/30",
  red: "bg-rose-500/15 text-rose-300 ring-rose-500/30",
  amber: "bg-amber-500/15 text-amber-300 ring-amber-500/30",
  slate: "bg-slate-500/15 text-slate-300 ring-slate-500/30",
  sky: "bg-sky-500/15 text-sky-300 ring-sky-500/30",
} as const;

export function Badge(props: { tone: keyof typeof BADGE; children: ReactNode; testId?: string }) {
  return (
    <span data-testid={props.testId} className={`inline-flex items-center rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset ${BADGE[props.tone]}`}>
      {props.children}
    </span>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <div role="status" className="flex items-center gap-2 py-6 text-sm text-slate-400">
      <span className="h-3 w-3 animate-spin rounded-full border-2 border-slate-500 border-t-transparent" />
      Loading {what}…
    </div>
  );
}

export function ErrorBox({ error, what }: { error: unknown; what: string }) {
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div role="alert" data-testid="api-error" className="rounded-lg border border-rose-800 bg-rose-950/40 px-3 py-2 text-sm text-rose-200">
      Could not load {what}: {message}
    </div>
  );
}

export function Empty({ children }: { children?: ReactNode }) {
  return <div data-testid="no-data" className="py-6 text-center text-sm text-slate-500">{children ?? "No data yet."}</div>;
}

/** Loading, error or the data; a refetch that fails keeps the last data and says so. */
export function QueryView<T>(props: { query: UseQueryResult<T>; what: string; children: (data: T) => ReactNode }) {
  const { query } = props;
  if (query.isPending) return <Loading what={props.what} />;
  if (query.isError && query.data === undefined) return <ErrorBox error={query.error} what={props.what} />;
  return (
    <>
      {query.isError && <ErrorBox error={query.error} what={`fresh ${props.what} (showing the last answer)`} />}
      {props.children(query.data as T)}
    </>
  );
}

export function Pager(props: { offset: number; limit: number; total: number; onChange: (offset: number) => void }) {
  const { offset, limit, total } = props;
  const from = total === 0 ? 0 : offset + 1;
  const to = Math.min(offset + limit, total);
  return (
    <div className="mt-3 flex items-center justify-between text-xs text-slate-400">
      <span>
        {from}–{to} of {total}
      </span>
      <div className="flex gap-2">
        <button className="btn-secondary" disabled={offset === 0} onClick={() => props.onChange(Math.max(0, offset - limit))}>
          ← Newer
        </button>
        <button className="btn-secondary" disabled={offset + limit >= total} onClick={() => props.onChange(offset + limit)}>
          Older →
        </button>
      </div>
    </div>
  );
}

export function Table(props: { head: ReactNode[]; children: ReactNode; testId?: string; align?: ("l" | "r")[] }) {
  return (
    <div className="overflow-x-auto">
      <table data-testid={props.testId} className="w-full text-left text-sm">
        <thead>
          <tr className="border-b border-slate-800 text-[11px] tracking-wider text-slate-400 uppercase">
            {props.head.map((h, i) => (
              <th key={i} className={`px-2 py-2 font-medium whitespace-nowrap ${props.align?.[i] === "r" ? "text-right" : ""}`}>
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-800/70">{props.children}</tbody>
      </table>
    </div>
  );
}
