// Issue 16: parameter optimization on the dashboard. Launch a search or a walk-forward run,
// watch the runs' progress live, and read a run: its trials, the winner, how much each
// parameter mattered, and how much of the winner is luck (DSR, PBO) or survives unseen data.
import { useEffect, useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { useOptimization, useOptimizations } from "../api/hooks";
import type { OptimizationSummary } from "../api/types";
import { Badge, Card, Empty, QueryView } from "../components/ui";
import { dateTime, day, label, objectiveValue } from "../format";
import { LaunchForm } from "./optimize/LaunchForm";
import { RunView, STATUS_TONE } from "./optimize/RunView";

export function OptimizePanel() {
  const [selected, setSelected] = useState<string | null>(null);
  return (
    <div className="grid gap-4 xl:grid-cols-3">
      <div className="space-y-4">
        <Card title="New optimization" subtitle="Searches the engine's settings over history; every trial is a full backtest" testId="optimize-form">
          <LaunchForm onLaunched={setSelected} />
        </Card>
        <Card title="Optimizations" testId="optimization-list">
          <RunList selected={selected} onSelect={setSelected} />
        </Card>
      </div>
      <div className="xl:col-span-2">
        <Card title="Run" testId="optimization-result">
          {selected ? <Run id={selected} /> : <Empty>Launch an optimization or pick one from the list.</Empty>}
        </Card>
      </div>
    </div>
  );
}

function RunList({ selected, onSelect }: { selected: string | null; onSelect: (id: string) => void }) {
  const list = useOptimizations();
  return (
    <QueryView query={list} what="optimizations">
      {(page) =>
        page.items.length === 0 ? (
          <Empty>No optimizations yet.</Empty>
        ) : (
          <ul className="divide-y divide-slate-800 text-sm">
            {page.items.map((o) => (
              <li key={o.id} data-testid="optimization-row">
                <button className={`w-full px-2 py-2 text-left hover:bg-slate-800/50 ${selected === o.id ? "bg-slate-800/60" : ""}`} onClick={() => onSelect(o.id)}>
                  <RunLine o={o} />
                </button>
              </li>
            ))}
          </ul>
        )
      }
    </QueryView>
  );
}

function RunLine({ o }: { o: OptimizationSummary }) {
  const b = o.config.backtest;
  return (
    <>
      <div className="flex items-center justify-between gap-2">
        <span className="text-slate-200">
          {o.kind === "walk_forward" ? "Walk-forward" : "Search"} · {label(o.objective)}
        </span>
        <Badge tone={STATUS_TONE[o.status]} testId="optimization-row-status">
          {o.status === "running" ? `running ${o.trials_done}/${o.trials_planned}` : o.status}
        </Badge>
      </div>
      {o.status === "running" && (
        <div className="mt-1 h-1 overflow-hidden rounded bg-slate-800">
          <div className="h-full bg-sky-500 transition-all" style={{ width: `${Math.round(o.progress * 100)}%` }} />
        </div>
      )}
      <div className="mt-0.5 text-xs text-slate-400">
        {day(b.start_date)} → {day(b.end_date)} · {o.config.sampler} · {o.trials_done}/{o.trials_planned} trials
        {o.best_value !== null && <> · best {objectiveValue(o.best_value, o.objective)}</>}
      </div>
      <div className="text-xs text-slate-500">started {dateTime(o.created_at)}</div>
    </>
  );
}

function Run({ id }: { id: string }) {
  const run = useOptimization(id);
  const client = useQueryClient();
  const status = run.data?.status;
  useEffect(() => {
    // The list shows the status too: refresh it as soon as this run changes state.
    if (status) void client.invalidateQueries({ queryKey: ["optimizations"] });
  }, [status, client]);
  return <QueryView query={run} what="the optimization">{(v) => <RunView v={v} />}</QueryView>;
}
