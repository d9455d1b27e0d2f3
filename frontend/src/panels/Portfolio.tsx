// Seed task 23.3: open positions with their stops, and where the money sits by sector.
import { Cell, Pie, PieChart, ResponsiveContainer, Tooltip } from "recharts";
import { usePositions } from "../api/hooks";
import type { Positions } from "../api/types";
import { Badge, Card, Empty, QueryView, Table } from "../components/ui";
import { PALETTE, TOOLTIP } from "../components/charts";
import { dateTime, money, num, pct, pnlClass, price, qty, signedMoney } from "../format";

export function PortfolioPanel() {
  const positions = usePositions();
  return (
    <div className="grid gap-4 xl:grid-cols-3">
      <Card title="Open positions" className="xl:col-span-2" testId="positions">
        <QueryView query={positions} what="positions">
          {(p) => <PositionsTable data={p} />}
        </QueryView>
      </Card>
      <Card title="Sector allocation" subtitle="Market value held per sector" testId="sectors">
        <QueryView query={positions} what="sector exposure">
          {(p) => <SectorPie data={p} />}
        </QueryView>
      </Card>
    </div>
  );
}

function PositionsTable({ data }: { data: Positions }) {
  if (data.items.length === 0) return <Empty>No open positions.</Empty>;
  return (
    <Table
      testId="positions-table"
      head={["Ticker", "Sector", "Qty", "Entry", "Current", "Unrealized P&L", "Stop-loss", "Take-profit", "Opened"]}
      align={["l", "l", "r", "r", "r", "r", "r", "r", "l"]}
    >
      {data.items.map((p) => (
        <tr key={p.ticker} className="hover:bg-slate-800/40">
          <td className="px-2 py-2 font-semibold text-slate-100">
            {p.ticker} {p.is_micro_trade && <Badge tone="sky">micro</Badge>}
          </td>
          <td className="px-2 py-2 text-slate-300">{p.sector}</td>
          <td className="px-2 py-2 text-right tabular-nums">{qty(p.quantity)}</td>
          <td className="px-2 py-2 text-right tabular-nums">{price(p.entry_price)}</td>
          <td className="px-2 py-2 text-right tabular-nums" title={p.price_as_of ? `as of ${dateTime(p.price_as_of)}` : "no market price: valued at entry"}>
            {price(p.current_price)}
            {!p.price_as_of && <span className="ml-1 text-amber-400">*</span>}
          </td>
          <td className={`px-2 py-2 text-right tabular-nums ${pnlClass(p.unrealized_pnl)}`}>
            {signedMoney(p.unrealized_pnl)} <span className="text-xs opacity-80">({pct(p.unrealized_pnl_pct, 2, true)})</span>
          </td>
          <td className="px-2 py-2 text-right tabular-nums">
            {price(p.stop_loss_price)} {p.trailing_stop_active && <Badge tone="amber">trailing</Badge>}
          </td>
          <td className="px-2 py-2 text-right tabular-nums">{price(p.take_profit_price)}</td>
          <td className="px-2 py-2 whitespace-nowrap text-slate-400">{dateTime(p.opened_at)}</td>
        </tr>
      ))}
    </Table>
  );
}

function SectorPie({ data }: { data: Positions }) {
  const slices = Object.entries(data.sector_exposure)
    .map(([sector, value]) => ({ sector, value: num(value) ?? 0 }))
    .filter((s) => s.value > 0)
    .sort((a, b) => b.value - a.value);
  if (slices.length === 0) return <Empty>Nothing held.</Empty>;
  const total = num(data.total_value) ?? slices.reduce((a, s) => a + s.value, 0);
  return (
    <div>
      <div className="h-56" data-testid="sector-chart">
        <ResponsiveContainer>
          <PieChart>
            <Pie data={slices} dataKey="value" nameKey="sector" innerRadius="55%" outerRadius="85%" paddingAngle={slices.length > 1 ? 2 : 0} isAnimationActive={false}>
              {slices.map((s, i) => (
                <Cell key={s.sector} fill={PALETTE[i % PALETTE.length]} stroke="#0f172a" />
              ))}
            </Pie>
            <Tooltip {...TOOLTIP} formatter={(v) => money(Number(v))} />
          </PieChart>
        </ResponsiveContainer>
      </div>
      <ul className="mt-2 space-y-1 text-sm">
        {slices.map((s, i) => (
          <li key={s.sector} className="flex items-center justify-between">
            <span className="flex items-center gap-2">
              <span className="h-2.5 w-2.5 rounded-sm" style={{ background: PALETTE[i % PALETTE.length] }} />
              {s.sector}
            </span>
            <span className="tabular-nums text-slate-300">
              {money(s.value)} <span className="text-xs text-slate-500">{total ? pct(s.value / total, 1) : ""} of total</span>
            </span>
          </li>
        ))}
      </ul>
    </div>
  );
}
