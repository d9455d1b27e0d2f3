// Seed task 23.5: cumulative P&L, daily returns and drawdown, from the end-of-day snapshots.
import { Area, AreaChart, Bar, BarChart, CartesianGrid, Cell, Line, LineChart, ReferenceLine, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { useTradingMetrics, useTradingMetricsHistory } from "../api/hooks";
import type { Metrics, Snapshot } from "../api/types";
import { AXIS, GRID, TOOLTIP } from "../components/charts";
import { DownloadButton } from "../components/Download";
import { Card, Empty, QueryView, Stat } from "../components/ui";
import { compactMoney, day, monthTick, money, num, pct, pnlClass, ratio, signedMoney } from "../format";

export function PerformancePanel() {
  const metrics = useTradingMetrics();
  const history = useTradingMetricsHistory();
  return (
    <div className="space-y-4">
      <Card
        title="Performance"
        subtitle="Closed trades and end-of-day snapshots (SPEC section 6)"
        testId="metrics"
        actions={<DownloadButton path="/tearsheet" query={{}} fileName="tearsheet-live.html" label="Download tearsheet" testId="tearsheet-live" />}
      >
        <QueryView query={metrics} what="metrics">
          {(m) => <MetricsGrid m={m} />}
        </QueryView>
      </Card>
      <QueryView query={history} what="the snapshot history">
        {(snapshots) => (snapshots.length === 0 ? <Card title="Charts"><Empty>No end-of-day snapshots yet: they are written at each market close.</Empty></Card> : <Charts snapshots={snapshots} />)}
      </QueryView>
    </div>
  );
}

function MetricsGrid({ m }: { m: Metrics }) {
  const pf = m.profit_factor_infinite ? "∞" : ratio(m.profit_factor);
  return (
    <div className="grid grid-cols-2 gap-3 md:grid-cols-4 xl:grid-cols-8">
      <Stat label="Total value" value={money(m.total_portfolio_value)} />
      <Stat label="Realized P&L" value={signedMoney(m.realized_pnl)} valueClass={pnlClass(m.realized_pnl)} />
      <Stat label="Unrealized P&L" value={signedMoney(m.unrealized_pnl)} valueClass={pnlClass(m.unrealized_pnl)} />
      <Stat label="Win rate" value={pct(m.win_rate, 1)} hint={`${m.win_count} won · ${m.loss_count} lost`} />
      <Stat label="Profit factor" value={pf} hint={`${m.trade_count} closed trades`} />
      <Stat label="Sharpe (30 d)" value={ratio(m.sharpe_ratio)} hint="annualised, risk-free 0" />
      <Stat label="Max drawdown" value={pct(m.max_drawdown, 1)} hint={`now ${pct(m.current_drawdown, 1)}`} />
      <Stat label="Snapshots" value={m.history_days} hint="end-of-day values" />
    </div>
  );
}

interface Point {
  date: string;
  pnl: number;
  value: number;
  ret: number | null;
  drawdown: number | null;
}

export function toPoints(snapshots: Snapshot[]): Point[] {
  // The session close writes daily_return = cumulative_return = 0 on the first snapshot (it has
  // no previous close), so day one's gain is in its daily_pnl only: the account started that
  // session at value − daily_pnl. Older snapshots without daily_pnl start from the first close.
  const v0 = num(snapshots[0].portfolio_value) ?? 0;
  const start = v0 - (num(snapshots[0].daily_pnl) ?? 0);
  return snapshots.map((s, i) => {
    const value = num(s.portfolio_value) ?? 0;
    return {
      date: s.snapshot_date,
      value,
      pnl: value - start,
      ret: i === 0 ? (start > 0 ? v0 / start - 1 : null) : s.daily_return,
      drawdown: s.current_drawdown === null ? null : -s.current_drawdown,
    };
  });
}

function ChartCard(props: { title: string; subtitle: string; testId: string; children: React.ReactElement }) {
  return (
    <Card title={props.title} subtitle={props.subtitle} testId={props.testId}>
      <div className="h-64">
        <ResponsiveContainer>{props.children}</ResponsiveContainer>
      </div>
    </Card>
  );
}

function Charts({ snapshots }: { snapshots: Snapshot[] }) {
  const points = toPoints(snapshots);
  const tickDate = monthTick;
  const last = points[points.length - 1];
  return (
    <div className="grid gap-4 xl:grid-cols-2">
      <ChartCard title="Cumulative P&L" subtitle={`Since the open of ${day(points[0].date)}: ${signedMoney(last.pnl)}`} testId="chart-pnl">
        <LineChart data={points} margin={{ top: 8, right: 12, left: 8, bottom: 0 }}>
          <CartesianGrid {...GRID} />
          <XAxis dataKey="date" {...AXIS} tickFormatter={tickDate} minTickGap={32} />
          <YAxis {...AXIS} tickFormatter={compactMoney} width={64} />
          <ReferenceLine y={0} stroke="#475569" />
          <Tooltip {...TOOLTIP} labelFormatter={(d) => day(String(d))} formatter={(v, name) => [signedMoney(Number(v)), name === "pnl" ? "P&L" : String(name)]} />
          <Line type="monotone" dataKey="pnl" stroke="#10b981" strokeWidth={2} dot={false} isAnimationActive={false} />
        </LineChart>
      </ChartCard>
      <ChartCard title="Daily returns" subtitle="End-of-day equity, day over day" testId="chart-returns">
        <BarChart data={points} margin={{ top: 8, right: 12, left: 8, bottom: 0 }}>
          <CartesianGrid {...GRID} />
          <XAxis dataKey="date" {...AXIS} tickFormatter={tickDate} minTickGap={32} />
          <YAxis {...AXIS} tickFormatter={(v) => pct(v, 1)} width={56} />
          <ReferenceLine y={0} stroke="#475569" />
          <Tooltip {...TOOLTIP} labelFormatter={(d) => day(String(d))} formatter={(v) => [pct(Number(v), 2, true), "return"]} />
          <Bar dataKey="ret" isAnimationActive={false}>
            {points.map((p) => (
              <Cell key={p.date} fill={(p.ret ?? 0) >= 0 ? "#10b981" : "#f43f5e"} />
            ))}
          </Bar>
        </BarChart>
      </ChartCard>
      <ChartCard title="Drawdown" subtitle="Below the running peak of equity" testId="chart-drawdown">
        <AreaChart data={points} margin={{ top: 8, right: 12, left: 8, bottom: 0 }}>
          <CartesianGrid {...GRID} />
          <XAxis dataKey="date" {...AXIS} tickFormatter={tickDate} minTickGap={32} />
          <YAxis {...AXIS} tickFormatter={(v) => pct(v, 1)} width={56} />
          <Tooltip {...TOOLTIP} labelFormatter={(d) => day(String(d))} formatter={(v) => [pct(Number(v), 2), "drawdown"]} />
          <Area type="monotone" dataKey="drawdown" stroke="#f43f5e" fill="#f43f5e" fillOpacity={0.25} isAnimationActive={false} />
        </AreaChart>
      </ChartCard>
      <ChartCard title="Equity" subtitle="Total value at each close" testId="chart-equity">
        <AreaChart data={points} margin={{ top: 8, right: 12, left: 8, bottom: 0 }}>
          <CartesianGrid {...GRID} />
          <XAxis dataKey="date" {...AXIS} tickFormatter={tickDate} minTickGap={32} />
          <YAxis {...AXIS} tickFormatter={compactMoney} width={64} domain={["auto", "auto"]} />
          <Tooltip {...TOOLTIP} labelFormatter={(d) => day(String(d))} formatter={(v) => [money(Number(v)), "value"]} />
          <Area type="monotone" dataKey="value" stroke="#38bdf8" fill="#38bdf8" fillOpacity={0.15} isAnimationActive={false} />
        </AreaChart>
      </ChartCard>
    </div>
  );
}
