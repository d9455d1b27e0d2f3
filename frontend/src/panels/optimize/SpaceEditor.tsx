// The search space as a small table: a parameter per row, a range (low, high, step, log scale)
// or a list of choices. The API checks every value against the setting's bounds; the bounds
// shown here are the API's own (GET /optimizations/parameters).
import type { SpaceSpec, TunableParameter } from "../../api/types";
import { FieldNote } from "../../components/fieldErrors";

export interface SpaceRow {
  key: number;
  name: string;
  mode: "range" | "choices";
  low: string;
  high: string;
  step: string;
  log: boolean;
  choices: string;
}

let nextKey = 0;

export function spaceRow(name: string, values: Partial<Omit<SpaceRow, "key" | "name">> = {}): SpaceRow {
  return { key: nextKey++, name, mode: "range", low: "", high: "", step: "", log: false, choices: "", ...values };
}

/** The docs' example space (docs/optimization.md), stepped so that a grid search takes it too. */
export function defaultSpace(): SpaceRow[] {
  return [
    spaceRow("reward_risk_ratio", { low: "1", high: "3", step: "0.5" }),
    spaceRow("stop_loss_atr_multiplier", { low: "1", high: "3", step: "0.5" }),
    spaceRow("signal_fast_window", { low: "5", high: "20", step: "5" }),
  ];
}

export function spaceSpec(row: SpaceRow): SpaceSpec {
  if (row.mode === "choices") return { choices: row.choices.split(/[\s,]+/).filter(Boolean) };
  const spec: SpaceSpec = { low: row.low.trim(), high: row.high.trim() };
  if (row.step.trim()) spec.step = row.step.trim();
  if (row.log) spec.log = true;
  return spec;
}

/** What JSON cannot carry to the API: a parameter named twice (an object keeps one) or not at all. */
export function rowProblem(rows: SpaceRow[], row: SpaceRow): string | null {
  const name = row.name.trim();
  if (!name) return "name a parameter";
  if (rows.filter((r) => r.name.trim() === name).length > 1) return "given more than once";
  return null;
}

export function SpaceEditor(props: { rows: SpaceRow[]; onChange: (rows: SpaceRow[]) => void; tunables: TunableParameter[]; error: unknown }) {
  const { rows, onChange, tunables } = props;
  const update = (key: number, change: Partial<SpaceRow>) => onChange(rows.map((r) => (r.key === key ? { ...r, ...change } : r)));
  const unused = tunables.find((t) => !rows.some((r) => r.name.trim() === t.name));
  return (
    <div data-testid="space-editor">
      <datalist id="tunable-names">
        {tunables.map((t) => (
          <option key={t.name} value={t.name}>{t.description}</option>
        ))}
      </datalist>
      <ul className="space-y-2">
        {rows.map((row) => {
          const about = tunables.find((t) => t.name === row.name.trim().split(".").pop());
          const problem = rowProblem(rows, row);
          return (
            <li key={row.key} data-testid="space-row" className="rounded-md border border-slate-800 p-2">
              <div className="flex items-center gap-1">
                <input
                  aria-label="Parameter"
                  list="tunable-names"
                  placeholder="parameter"
                  className="input min-w-0 flex-1 font-mono text-xs"
                  value={row.name}
                  onChange={(e) => update(row.key, { name: e.target.value })}
                />
                <select aria-label="Kind" className="input py-1 text-xs" value={row.mode} onChange={(e) => update(row.key, { mode: e.target.value as SpaceRow["mode"] })}>
                  <option value="range">range</option>
                  <option value="choices">choices</option>
                </select>
                <button type="button" aria-label={`Remove ${row.name || "row"}`} className="btn-secondary px-2 py-1 text-xs" onClick={() => onChange(rows.filter((r) => r.key !== row.key))}>
                  ✕
                </button>
              </div>
              <div className="mt-1 flex flex-wrap items-center gap-1">
                {row.mode === "range" ? (
                  <>
                    <input aria-label="Low" placeholder="low" className="input w-20 text-xs" value={row.low} onChange={(e) => update(row.key, { low: e.target.value })} />
                    <span className="text-slate-500">to</span>
                    <input aria-label="High" placeholder="high" className="input w-20 text-xs" value={row.high} onChange={(e) => update(row.key, { high: e.target.value })} />
                    <span className="text-slate-500">by</span>
                    <input aria-label="Step" placeholder="any" className="input w-16 text-xs" value={row.step} onChange={(e) => update(row.key, { step: e.target.value })} />
                    <label className="flex items-center gap-1 text-slate-400" title="sample on a log scale (low above 0, no step)">
                      <input type="checkbox" checked={row.log} onChange={(e) => update(row.key, { log: e.target.checked })} />
                      log
                    </label>
                  </>
                ) : (
                  <input aria-label="Choices" placeholder="0.55, 0.6, 0.65" className="input min-w-0 flex-1 text-xs" value={row.choices} onChange={(e) => update(row.key, { choices: e.target.value })} />
                )}
                <span className="ml-auto text-[11px] text-slate-500" title={about?.description}>
                  {about ? `${about.kind === "int" ? "whole, " : ""}allowed ${about.bounds}` : row.name.trim() ? "not a known parameter" : ""}
                </span>
              </div>
              <FieldNote error={props.error} field={`space.${row.name.trim()}`} extra={problem ? [problem] : []} />
            </li>
          );
        })}
      </ul>
      <FieldNote error={props.error} field="space" exact />
      <button type="button" className="btn-secondary mt-1 px-2 py-1 text-xs" onClick={() => onChange([...rows, spaceRow(unused?.name ?? "")])}>
        + Parameter
      </button>
    </div>
  );
}
