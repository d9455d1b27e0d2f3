// A finished search: the winner (its settings, figures and equity), how much each parameter
// mattered (the API's fANOVA importance), the objective across one parameter's values, and
// the overfitting measures.
import { useState } from "react";
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Scatter, ScatterChart, Tooltip, XAxis, YAxis } from "recharts";
import type { OptimizationView } from "../../api/types";
import { AXIS, GRID, TOOLTIP } from "../../components/charts";
import { EquityChart } from "../../components/EquityChart";
import { Empty, Stat, Table } from "../../components/ui";
import { label, money, objectiveValue, pct, ratio } from "../../format";
import { metric, paramValue, parameterNames } from "./metrics";
import { DsrStat, LogitHistogram, PboStat } from "./Overfitting";

export function SearchResult({ v }: { v: OptimizationView }) {
  const best = v.best_trial === null ? undefined : v.trials.find((t) => t.window_index === null && t.number === v.best_trial);
  const m = best?.metrics;
  return (
    <div className="space-y-4">
      <div className="grid grid-cols-2 gap-3 md:grid-cols-4">
        <Stat
          label={`Best ${label(v.objective)}`}
          value={objectiveValue(v.best_value, v.objective, best?.value_infinite)}
          testId="optimization-best-value"
          hint={v.best_trial === null ? "no feasible trial" : `trial #${v.best_trial}`}
        />
        <Stat label="Best trial's return" value={pct(metric(m, "total_return").value, 1, true)} hint={`max drawdown ${pct(metric(m, "max_drawdown").value, 1)}`} />
        <DsrStat dsr={v.dsr} testId="optimization-dsr" />
        <PboStat pbo={v.pbo} testId="optimization-pbo" />
      </div>
      {best && m ? (
        <div className="grid gap-4 lg:grid-cols-3">
          <div>
            <h3 className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Best settings</h3>
            <Table testId="optimization-best-params" head={["Parameter", "Value"]} align={["l", "r"]}>
              {Object.entries(v.best_params ?? {}).map(([name, value]) => (
                <tr key={name}>
                  <td className="px-2 py-1 font-mono text-xs">{name}</td>
                  <td className="px-2 py-1 text-right tabular-nums">{paramValue(value)}</td>
                </tr>
              ))}
            </Table>
            <p className="mt-2 text-xs text-slate-400">
              {m.trade_count} trades · win rate {pct(m.win_rate, 0)} · profit factor {m.profit_factor_infinite ? "∞" : ratio(m.profit_factor)} · Sharpe{" "}
              {ratio(m.sharpe)} · final {money(m.final_value)}. Other settings: the engine's defaults at the tier.
            </p>
          </div>
          <div className="lg:col-span-2">
            <h3 className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Best trial's equity (in-sample: the period it was chosen on)</h3>
            <EquityChart points={v.best_equity} testId="optimization-best-equity" color="#10b981" name="best trial" />
          </div>
        </div>
      ) : (
        <Empty>No trial met the constraints: there is no best setting.</Empty>
      )}
      <div className="grid gap-4 lg:grid-cols-2">
        <Importance importance={v.importance} />
        <ObjectiveByParameter v={v} />
      </div>
      <LogitHistogram pbo={v.pbo} />
    </div>
  );
}

/** fANOVA: the share of the objective's variance over the trials each parameter explains. */
export function Importance({ importance }: { importance: Record<string, number> | null }) {
  const data = Object.entries(importance ?? {})
    .map(([name, share]) => ({ name, share }))
    .sort((a, b) => b.share - a.share);
  return (
    <div>
      <h3 className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Parameter importance (fANOVA)</h3>
      {data.length === 0 ? (
        <Empty>Not computed: it needs two trials with a finite objective and different settings.</Empty>
      ) : (
        <div style={{ height: 40 + 28 * data.length }} data-testid="optimization-importance">
          <ResponsiveContainer>
            <BarChart data={data} layout="vertical" margin={{ top: 4, right: 16, left: 8, bottom: 0 }}>
              <CartesianGrid {...GRID} horizontal={false} />
              <XAxis type="number" {...AXIS} domain={[0, 1]} tickFormatter={(x: number) => pct(x, 0)} />
              <YAxis type="category" dataKey="name" {...AXIS} width={170} />
              <Tooltip {...TOOLTIP} formatter={(x) => [pct(Number(x), 1), "of the variance"]} />
              <Bar dataKey="share" fill="#38bdf8" isAnimationActive={false} />
            </BarChart>
          </ResponsiveContainer>
        </div>
      )}
    </div>
  );
}

/** Every trial's objective against one parameter's value: where the good region is, and how flat. */
function ObjectiveByParameter({ v }: { v: OptimizationView }) {
  const names = parameterNames(v);
  const mostImportant = Object.entries(v.importance ?? {}).sort((a, b) => b[1] - a[1])[0]?.[0];
  const [chosen, setChosen] = useState<string | null>(null);
  const name = chosen ?? mostImportant ?? names[0];
  const points = (state: string) =>
    v.trials
      .filter((t) => t.state === state && t.value !== null && typeof t.params[name] === "number")
      .map((t) => ({ x: t.params[name], y: t.value as number, trial: t.number }));
  const feasible = points("complete");
  const infeasible = points("infeasible");
  const left = v.trials.length - feasible.length - infeasible.length;
  return (
    <div>
      <div className="mb-1 flex items-center justify-between gap-2">
        <h3 className="text-xs font-medium tracking-wider text-slate-400 uppercase">{label(v.objective)} by parameter</h3>
        <select aria-label="Parameter" className="input py-0.5 text-xs" value={name} onChange={(e) => setChosen(e.target.value)}>
          {names.map((n) => (
            <option key={n} value={n}>{n}</option>
          ))}
        </select>
      </div>
      <div className="h-52">
        <ResponsiveContainer>
          <ScatterChart margin={{ top: 4, right: 12, left: 0, bottom: 0 }}>
            <CartesianGrid {...GRID} />
            <XAxis type="number" dataKey="x" name={name} {...AXIS} domain={["auto", "auto"]} tickFormatter={paramValue} />
            <YAxis type="number" dataKey="y" name={v.objective} {...AXIS} width={56} tickFormatter={(y: number) => (v.objective === "total_return" ? pct(y, 0) : y.toFixed(1))} />
            <Tooltip {...TOOLTIP} formatter={(value, key) => [key === "y" ? objectiveValue(Number(value), v.objective) : paramValue(value), key === "y" ? v.objective : name]} />
            <Scatter name="feasible" data={feasible} fill="#10b981" isAnimationActive={false} />
            <Scatter name="infeasible" data={infeasible} fill="#f59e0b" isAnimationActive={false} />
          </ScatterChart>
        </ResponsiveContainer>
      </div>
      <p className="text-xs text-slate-500">
        Green: feasible; amber: broke a constraint.{left > 0 && ` ${left} trial(s) without a finite value are not drawn.`}
      </p>
    </div>
  );
}
