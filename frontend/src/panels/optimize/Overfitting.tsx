// The two measures of how much of a search's winner is luck (docs/optimization.md), and the
// distribution of CSCV's logits behind PBO.
import { Bar, BarChart, CartesianGrid, Cell, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import type { BacktestOverfitting, DeflatedSharpe } from "../../api/types";
import { AXIS, GRID, TOOLTIP } from "../../components/charts";
import { Stat } from "../../components/ui";
import { pct, ratio } from "../../format";

export function DsrStat({ dsr, testId }: { dsr: DeflatedSharpe | null; testId?: string }) {
  if (!dsr || dsr.error || dsr.dsr === undefined) return <Stat label="Deflated Sharpe" value="—" hint={dsr?.error ?? "not computed"} testId={testId} />;
  return (
    <Stat
      label="Deflated Sharpe"
      value={pct(dsr.dsr, 1)}
      testId={testId}
      valueClass={dsr.dsr !== null && dsr.dsr >= 0.95 ? "text-emerald-400" : dsr.dsr !== null && dsr.dsr <= 0.5 ? "text-rose-400" : "text-slate-100"}
      hint={`P(the best Sharpe is real) after ${dsr.trials} trials: daily Sharpe ${ratio(dsr.observed_sharpe, 3)} vs ${ratio(dsr.expected_max_sharpe, 3)} expected of the best of worthless ones`}
    />
  );
}

export function PboStat({ pbo, testId }: { pbo: BacktestOverfitting | null; testId?: string }) {
  if (!pbo || pbo.error || pbo.pbo === undefined) return <Stat label="PBO" value="—" hint={pbo?.error ?? "not computed"} testId={testId} />;
  return (
    <Stat
      label="PBO"
      value={pct(pbo.pbo, 1)}
      testId={testId}
      valueClass={pbo.pbo !== null && pbo.pbo > 0.5 ? "text-rose-400" : pbo.pbo !== null && pbo.pbo < 0.2 ? "text-emerald-400" : "text-slate-100"}
      hint={`share of ${pbo.combinations?.toLocaleString("en-US")} half-splits whose in-sample winner fell below the out-of-sample median; it lost money in ${pct(pbo.probability_of_loss, 1)}`}
    />
  );
}

/** CSCV's logits: left of 0 (rose) the in-sample winner ranked below the out-of-sample median. */
export function LogitHistogram({ pbo }: { pbo: BacktestOverfitting | null }) {
  const h = pbo?.logit_histogram;
  if (!h || h.counts.length === 0) return null;
  const data = h.counts.map((count, i) => ({ logit: (h.edges[i] + h.edges[i + 1]) / 2, count }));
  return (
    <div>
      <h3 className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">PBO: rank logits of the in-sample winner</h3>
      <div className="h-40" data-testid="pbo-histogram">
        <ResponsiveContainer>
          <BarChart data={data} margin={{ top: 4, right: 8, left: 0, bottom: 0 }}>
            <CartesianGrid {...GRID} />
            <XAxis dataKey="logit" {...AXIS} tickFormatter={(x: number) => x.toFixed(1)} />
            <YAxis {...AXIS} width={40} allowDecimals={false} />
            <Tooltip {...TOOLTIP} labelFormatter={(x) => `logit ≈ ${Number(x).toFixed(2)}`} formatter={(n) => [String(n), "splits"]} />
            <Bar dataKey="count" isAnimationActive={false}>
              {data.map((d, i) => (
                <Cell key={i} fill={d.logit < 0 ? "#fb7185" : "#10b981"} />
              ))}
            </Bar>
          </BarChart>
        </ResponsiveContainer>
      </div>
    </div>
  );
}
