// A finished walk-forward run: what the search found in each train period against what it did
// on the unseen test period after it, the stitched out-of-sample record, how much performance
// was kept (walk-forward efficiency) and how steady the chosen settings were.
import { CartesianGrid, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import type { OptimizationView, WalkForwardWindow } from "../../api/types";
import { AXIS, GRID, TOOLTIP } from "../../components/charts";
import { Empty, ErrorBox, Stat, Table } from "../../components/ui";
import { compactMoney, day, label, money, monthTick, objectiveValue, pct, ratio } from "../../format";
import { metric, paramValue } from "./metrics";

export function WalkForwardResult({ v }: { v: OptimizationView }) {
  const s = v.summary;
  const oos = s.out_of_sample_metrics;
  return (
    <div className="space-y-4">
      <div className="grid grid-cols-2 gap-3 md:grid-cols-4">
        <Stat label="Windows tested" value={`${s.windows_tested ?? 0} / ${s.windows ?? v.windows.length}`} testId="wf-windows-tested" />
        <Stat
          label="Walk-forward efficiency"
          value={ratio(s.degradation)}
          testId="wf-efficiency"
          hint={`mean ${label(v.objective)}: out-of-sample ${objectiveValue(s.out_of_sample_mean, v.objective)} / in-sample ${objectiveValue(s.in_sample_mean, v.objective)}${s.degradation === null || s.degradation === undefined ? " (none: in-sample not above 0)" : ""}`}
        />
        <Stat label="Out-of-sample return" value={pct(oos?.total_return, 1, true)} hint={`stitched, ${oos?.sessions ?? 0} sessions`} />
        <Stat label="Out-of-sample Sharpe" value={ratio(oos?.sharpe)} hint={`max drawdown ${pct(oos?.max_drawdown, 1)}`} />
      </div>
      {s.stitch_error && <ErrorBox error={s.stitch_error} what="the stitched out-of-sample equity" />}
      <InVersusOutOfSample v={v} />
      <Windows v={v} />
      <Stability v={v} />
      <ImportanceByWindow windows={v.windows} />
    </div>
  );
}

/** Each window's in-sample equity (its best trial on the train period, faint) and the stitched
 * out-of-sample equity (bold); all start from the initial capital. */
function InVersusOutOfSample({ v }: { v: OptimizationView }) {
  const rows = new Map<string, Record<string, number | string>>();
  const put = (series: string, points: { date: string; value: string }[]) => {
    for (const p of points) {
      const row = rows.get(p.date) ?? { date: p.date };
      row[series] = Number(p.value);
      rows.set(p.date, row);
    }
  };
  put("oos", v.oos_equity);
  const windows = v.windows.filter((w) => w.in_sample_equity.length > 0);
  for (const w of windows) put(`is${w.window_index}`, w.in_sample_equity);
  const data = [...rows.values()].sort((a, b) => String(a.date).localeCompare(String(b.date)));
  if (data.length === 0) return <Empty>No equity: no window was tested.</Empty>;
  return (
    <div>
      <h3 className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">
        Equity: <span className="text-emerald-400">out-of-sample, stitched</span> vs <span className="text-sky-400">in-sample, each window's train period</span>
      </h3>
      <div className="h-72" data-testid="wf-equity">
        <ResponsiveContainer>
          <LineChart data={data} margin={{ top: 8, right: 12, left: 8, bottom: 0 }}>
            <CartesianGrid {...GRID} />
            <XAxis dataKey="date" {...AXIS} tickFormatter={monthTick} minTickGap={40} />
            <YAxis {...AXIS} tickFormatter={compactMoney} width={64} domain={["auto", "auto"]} />
            <Tooltip
              {...TOOLTIP}
              labelFormatter={(d) => day(String(d))}
              formatter={(value, key) => [money(Number(value)), key === "oos" ? "out-of-sample" : `in-sample, window ${String(key).slice(2)}`]}
            />
            {windows.map((w) => (
              <Line key={w.window_index} dataKey={`is${w.window_index}`} stroke="#38bdf8" strokeOpacity={0.45} dot={false} strokeWidth={1} connectNulls={false} isAnimationActive={false} />
            ))}
            <Line dataKey="oos" stroke="#10b981" dot={false} strokeWidth={2.5} connectNulls={false} isAnimationActive={false} />
          </LineChart>
        </ResponsiveContainer>
      </div>
    </div>
  );
}

function windowValue(w: WalkForwardWindow, side: "in_sample" | "out_of_sample", objective: string): string {
  const { value, infinite } = metric(w[side], objective);
  return objectiveValue(value, objective, infinite);
}

function Windows({ v }: { v: OptimizationView }) {
  return (
    <div>
      <h3 className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Windows</h3>
      <Table
        testId="wf-windows"
        head={["#", "Train", "Test", "Chosen settings", `IS ${label(v.objective)}`, `OOS ${label(v.objective)}`, "OOS return", "Efficiency", "DSR", "PBO"]}
        align={["r", "l", "l", "l", "r", "r", "r", "r", "r", "r"]}
      >
        {v.windows.map((w) => (
          <tr key={w.window_index} data-testid="wf-window-row" className="hover:bg-slate-800/40">
            <td className="px-2 py-1 text-right tabular-nums">{w.window_index}</td>
            <td className="px-2 py-1 whitespace-nowrap text-xs">{day(w.train_start)}<br />→ {day(w.train_end)}</td>
            <td className="px-2 py-1 whitespace-nowrap text-xs">{day(w.test_start)}<br />→ {day(w.test_end)}</td>
            <td className="px-2 py-1 font-mono text-xs">
              {w.best_params ? Object.entries(w.best_params).map(([k, x]) => `${k}=${paramValue(x)}`).join(" ") : <span className="text-rose-300">{w.error}</span>}
              {w.best_params && w.error && <span className="block text-rose-300">{w.error}</span>}
            </td>
            <td className="px-2 py-1 text-right tabular-nums">{windowValue(w, "in_sample", v.objective)}</td>
            <td className="px-2 py-1 text-right tabular-nums">{windowValue(w, "out_of_sample", v.objective)}</td>
            <td className="px-2 py-1 text-right tabular-nums">{pct(metric(w.out_of_sample, "total_return").value, 1, true)}</td>
            <td className="px-2 py-1 text-right tabular-nums">{ratio(w.degradation)}</td>
            <td className="px-2 py-1 text-right tabular-nums" title={w.dsr?.error}>{w.dsr?.error ? "—" : pct(w.dsr?.dsr, 0)}</td>
            <td className="px-2 py-1 text-right tabular-nums" title={w.pbo?.error}>{w.pbo?.error ? "—" : pct(w.pbo?.pbo, 0)}</td>
          </tr>
        ))}
      </Table>
      <p className="mt-1 text-xs text-slate-500">Efficiency: out-of-sample over in-sample {label(v.objective)} (none when in-sample was not above 0).</p>
    </div>
  );
}

function Stability({ v }: { v: OptimizationView }) {
  const stability = v.summary.stability ?? [];
  return (
    <div>
      <h3 className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Parameter stability across windows</h3>
      {stability.length === 0 ? (
        <Empty>No window was tested.</Empty>
      ) : (
        <Table testId="wf-stability" head={["Parameter", "Chosen, by window", "Most often", "CV"]} align={["l", "l", "r", "r"]}>
          {stability.map((p) => (
            <tr key={p.name}>
              <td className="px-2 py-1 font-mono text-xs">{p.name}</td>
              <td className="px-2 py-1 font-mono text-xs">{p.values.map(paramValue).join(" → ")}</td>
              <td className="px-2 py-1 text-right tabular-nums">
                {paramValue(p.modal_value)} <span className="text-xs text-slate-400">({pct(p.modal_share, 0)})</span>
              </td>
              <td className="px-2 py-1 text-right tabular-nums">{ratio(p.coefficient_of_variation)}</td>
            </tr>
          ))}
        </Table>
      )}
      <p className="mt-1 text-xs text-slate-500">CV: the chosen values' standard deviation over their mean. Unsteady settings with a low efficiency: the search is fitting noise.</p>
    </div>
  );
}

/** Each window's fANOVA importance, as a heatmap: a parameter that matters in one window and not
 * the next is not a property of the strategy. */
function ImportanceByWindow({ windows }: { windows: WalkForwardWindow[] }) {
  const names = [...new Set(windows.flatMap((w) => Object.keys(w.importance ?? {})))];
  return (
    <div>
      <h3 className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Parameter importance by window (fANOVA)</h3>
      {names.length === 0 ? (
        <Empty>Not computed: it needs two trials with a finite objective and different settings.</Empty>
      ) : (
        <Table testId="wf-importance" head={["Parameter", ...windows.map((w) => `#${w.window_index}`)]} align={["l", ...windows.map(() => "r" as const)]}>
          {names.map((name) => (
            <tr key={name}>
              <td className="px-2 py-1 font-mono text-xs">{name}</td>
              {windows.map((w) => {
                const share = w.importance?.[name];
                return (
                  <td key={w.window_index} className="px-2 py-1 text-right text-xs tabular-nums" style={{ background: share === undefined ? undefined : `rgba(56, 189, 248, ${0.08 + 0.6 * share})` }}>
                    {share === undefined ? "—" : pct(share, 0)}
                  </td>
                );
              })}
            </tr>
          ))}
        </Table>
      )}
    </div>
  );
}
