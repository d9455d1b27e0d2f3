import { Area, AreaChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import { compactMoney, day, money, monthTick } from "../format";
import { AXIS, GRID, TOOLTIP } from "./charts";
import { Empty } from "./ui";

/** An end-of-day equity curve as the API gives it (values are decimal strings). */
export function EquityChart(props: { points: { date: string; value: string }[]; testId?: string; color?: string; name?: string }) {
  const color = props.color ?? "#a78bfa";
  const curve = props.points.map((p) => ({ date: p.date, value: Number(p.value) }));
  if (curve.length === 0) return <Empty>No equity curve yet.</Empty>;
  return (
    <div className="h-64" data-testid={props.testId}>
      <ResponsiveContainer>
        <AreaChart data={curve} margin={{ top: 8, right: 12, left: 8, bottom: 0 }}>
          <CartesianGrid {...GRID} />
          <XAxis dataKey="date" {...AXIS} tickFormatter={monthTick} minTickGap={40} />
          <YAxis {...AXIS} tickFormatter={compactMoney} width={64} domain={["auto", "auto"]} />
          <Tooltip {...TOOLTIP} labelFormatter={(d) => day(String(d))} formatter={(v) => [money(Number(v)), props.name ?? "equity"]} />
          <Area type="monotone" dataKey="value" stroke={color} fill={color} fillOpacity={0.15} isAnimationActive={false} />
        </AreaChart>
      </ResponsiveContainer>
    </div>
  );
}
