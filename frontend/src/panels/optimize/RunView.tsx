// One optimization: its progress while it runs, then a search's or a walk-forward's results,
// and the trials table (the API's every trial, as it stores them).
import { useMemo, useState } from "react";
import type { OptimizationStatus, OptimizationView } from "../../api/types";
import { Badge, Empty, ErrorBox, Table } from "../../components/ui";
import { dateTime, day, label, objectiveValue, pct } from "../../format";
import { metric, paramValue, parameterNames, trialKey } from "./metrics";
import { SearchResult } from "./SearchResult";
import { WalkForwardResult } from "./WalkForwardResult";

export const STATUS_TONE: Record<OptimizationStatus, "sky" | "green" | "red" | "amber"> = {
  running: "sky",
  completed: "green",
  failed: "red",
  interrupted: "amber",
};
const STATE_TONE = { complete: "green", infeasible: "amber", failed: "red" } as const;

export function RunView({ v }: { v: OptimizationView }) {
  const b = v.config.backtest;
  const c = v.config;
  return (
    <div className="space-y-4" data-testid="optimization-run" data-run-id={v.id}>
      <div className="flex flex-wrap items-center gap-2 text-sm text-slate-300">
        <Badge tone={STATUS_TONE[v.status]} testId="optimization-status">{v.status}</Badge>
        <span>
          {v.kind === "walk_forward" ? "Walk-forward" : "Search"} for the best <b>{label(v.objective)}</b> · {day(b.start_date)} → {day(b.end_date)} ·{" "}
          <span className="capitalize">{b.risk_tier}</span> · {b.tickers.length ? b.tickers.join(", ") : "all tickers"}
        </span>
        <span className="text-slate-500">
          {c.sampler}, seed {c.seed}
          {c.constraints.min_trades > 0 && `, ≥ ${c.constraints.min_trades} trades`}
          {c.constraints.max_drawdown !== null && `, drawdown ≤ ${pct(c.constraints.max_drawdown, 1)}`}
          {c.walk_forward && `, ${c.walk_forward.anchored ? "anchored" : "rolling"} ${c.walk_forward.train}/${c.walk_forward.test}${c.walk_forward.step ? `/${c.walk_forward.step}` : ""} sessions`}
          {" · "}started {dateTime(v.created_at)}
        </span>
      </div>
      <div>
        <div className="h-2 overflow-hidden rounded bg-slate-800">
          <div className={`h-full transition-all ${v.status === "running" ? "bg-sky-500" : "bg-slate-600"}`} style={{ width: `${Math.round(v.progress * 100)}%` }} />
        </div>
        <p className="mt-1 text-xs text-slate-400">
          <span data-testid="optimization-progress">{v.trials_done} / {v.trials_planned}</span> trials
          {v.status === "running" ? "; refreshing…" : v.completed_at ? `; ended ${dateTime(v.completed_at)}` : ""}
        </p>
      </div>
      {v.error && <ErrorBox error={v.error} what={`the result: the run ${v.status === "failed" ? "failed" : "was interrupted"}`} />}
      {v.status === "completed" && (v.kind === "walk_forward" ? <WalkForwardResult v={v} /> : <SearchResult v={v} />)}
      <TrialsTable v={v} />
    </div>
  );
}

function TrialsTable({ v }: { v: OptimizationView }) {
  const [byValue, setByValue] = useState(false);
  const names = parameterNames(v);
  const walkForward = v.kind === "walk_forward";
  const best = new Set(
    walkForward
      ? v.windows.filter((w) => w.best_trial !== null).map((w) => trialKey({ window_index: w.window_index, number: w.best_trial! }))
      : v.best_trial === null ? [] : [trialKey({ window_index: null, number: v.best_trial })],
  );
  const rows = useMemo(() => {
    if (!byValue) return v.trials;
    const score = (t: (typeof v.trials)[number]) => (t.value_infinite ? Infinity : t.value ?? -Infinity);
    return [...v.trials].sort((a, b) => score(b) - score(a));
  }, [v.trials, byValue]);
  if (v.trials.length === 0) return <Empty>No trial has finished yet.</Empty>;
  return (
    <div>
      <div className="mb-1 flex items-center justify-between text-xs text-slate-400">
        <span>
          Trials: {v.trials.length} · {v.trials.filter((t) => t.state === "complete").length} feasible ·{" "}
          {v.trials.filter((t) => t.state === "infeasible").length} infeasible · {v.trials.filter((t) => t.state === "failed").length} failed
          {walkForward ? " (each window's out-of-sample run is not a trial)" : ""}
        </span>
        <label className="flex items-center gap-1">
          <input type="checkbox" checked={byValue} onChange={(e) => setByValue(e.target.checked)} />
          best first
        </label>
      </div>
      <div className="max-h-[28rem] overflow-y-auto">
        <Table
          testId="optimization-trials"
          head={[...(walkForward ? ["Window"] : []), "#", ...names, "State", label(v.objective), "Trades", "Return", "Max DD", "Time", "Why"]}
          align={[...(walkForward ? ["r" as const] : []), "r", ...names.map(() => "r" as const), "l", "r", "r", "r", "r", "r", "l"]}
        >
          {rows.map((t) => {
            const isBest = best.has(trialKey(t));
            return (
              <tr key={trialKey(t)} data-testid="optimization-trial-row" className={isBest ? "bg-emerald-500/10" : "hover:bg-slate-800/40"}>
                {walkForward && <td className="px-2 py-1 text-right tabular-nums">{t.window_index}</td>}
                <td className="px-2 py-1 text-right tabular-nums">
                  {t.number}
                  {isBest && <span className="ml-1 text-[10px] text-emerald-400 uppercase">best</span>}
                </td>
                {names.map((n) => (
                  <td key={n} className="px-2 py-1 text-right font-mono text-xs tabular-nums">{paramValue(t.params[n])}</td>
                ))}
                <td className="px-2 py-1"><Badge tone={STATE_TONE[t.state]}>{t.state}</Badge></td>
                <td className="px-2 py-1 text-right tabular-nums">{objectiveValue(t.value, v.objective, t.value_infinite)}</td>
                <td className="px-2 py-1 text-right tabular-nums">{t.metrics?.trade_count ?? "—"}</td>
                <td className="px-2 py-1 text-right tabular-nums">{pct(metric(t.metrics, "total_return").value, 1, true)}</td>
                <td className="px-2 py-1 text-right tabular-nums">{pct(metric(t.metrics, "max_drawdown").value, 1)}</td>
                <td className="px-2 py-1 text-right tabular-nums text-slate-400">{t.seconds === null ? "—" : `${t.seconds.toFixed(1)} s`}</td>
                <td className="px-2 py-1 text-xs text-slate-400">{t.reason ?? ""}</td>
              </tr>
            );
          })}
        </Table>
      </div>
    </div>
  );
}
