import type { OptimizationTrial, OptimizationView, TrialMetrics } from "../../api/types";

/** A figure of a trial's metrics, with whether the API flagged it infinite (JSON sends null). */
export function metric(m: TrialMetrics | null | undefined, name: string): { value: number | null; infinite: boolean } {
  if (!m) return { value: null, infinite: false };
  const value = (m as unknown as Record<string, unknown>)[name];
  return { value: typeof value === "number" ? value : null, infinite: m[`${name}_infinite`] === true };
}

/** The parameters of a run in the order its space lists them (then any others its trials have). */
export function parameterNames(v: OptimizationView): string[] {
  const names = Object.keys(v.config.space ?? {});
  for (const t of v.trials) for (const name of Object.keys(t.params)) if (!names.includes(name)) names.push(name);
  return names;
}

/** A parameter's value: whole numbers as they are, others to 4 decimals at most. */
export function paramValue(value: unknown): string {
  if (typeof value !== "number") return value === undefined || value === null ? "—" : String(value);
  return Number.isInteger(value) ? String(value) : value.toLocaleString("en-US", { maximumFractionDigits: 4 });
}

export function trialKey(t: Pick<OptimizationTrial, "window_index" | "number">): string {
  return `${t.window_index ?? "-"}:${t.number}`;
}
