// Seed task 23.4: closed trades with P&L, hold time and the thesis that opened them.
import { useState } from "react";
import { useTrades, type TradeFilters } from "../api/hooks";
import { Badge, Card, Empty, Pager, QueryView, Table } from "../components/ui";
import { FilterBar, isoDay } from "../components/Filters";
import { dateTime, duration, label, pct, pnlClass, price, qty, signedMoney } from "../format";
import { DownloadButton } from "../components/Download";

const LIMIT = 25;

export function TradesPanel() {
  const [filters, setFilters] = useState<TradeFilters>({ limit: LIMIT, offset: 0 });
  const trades = useTrades(filters);
  return (
    <div className="space-y-4">
    <Card title="Trade history" subtitle="Closed trades, newest exit first" testId="trades">
      <FilterBar onApply={(f) => setFilters({ limit: LIMIT, offset: 0, ticker: f.ticker || undefined, since: isoDay(f.since), until: isoDay(f.until) })} />
      <QueryView query={trades} what="trades">
        {(page) =>
          page.items.length === 0 ? (
            <Empty>{filters.ticker || filters.since || filters.until ? "No closed trades match." : "No closed trades yet."}</Empty>
          ) : (
            <>
              <Table
                testId="trades-table"
                head={["Ticker", "Qty", "Entry", "Exit", "P&L", "P&L %", "Held", "Exit reason", "Closed", "Thesis"]}
                align={["l", "r", "r", "r", "r", "r", "r", "l", "l", "l"]}
              >
                {page.items.map((t) => (
                  <tr key={t.id} className="align-top hover:bg-slate-800/40">
                    <td className="px-2 py-2 font-semibold text-slate-100">
                      {t.ticker} {t.is_micro_trade && <Badge tone="sky">micro</Badge>}
                    </td>
                    <td className="px-2 py-2 text-right tabular-nums">{qty(t.quantity)}</td>
                    <td className="px-2 py-2 text-right tabular-nums">{price(t.entry_price)}</td>
                    <td className="px-2 py-2 text-right tabular-nums">{price(t.exit_price)}</td>
                    <td className={`px-2 py-2 text-right tabular-nums ${pnlClass(t.pnl)}`}>{signedMoney(t.pnl)}</td>
                    <td className={`px-2 py-2 text-right tabular-nums ${pnlClass(t.pnl)}`}>{pct(t.pnl_pct, 2, true)}</td>
                    <td className="px-2 py-2 text-right whitespace-nowrap tabular-nums">{duration(t.hold_duration_seconds)}</td>
                    <td className="px-2 py-2 whitespace-nowrap">{label(t.exit_reason)}</td>
                    <td className="px-2 py-2 whitespace-nowrap text-slate-400">{dateTime(t.exit_at)}</td>
                    <td className="max-w-md px-2 py-2 text-xs text-slate-400">{t.thesis ?? "—"}</td>
                  </tr>
                ))}
              </Table>
              <Pager offset={filters.offset} limit={LIMIT} total={page.total} onChange={(offset) => setFilters({ ...filters, offset })} />
            </>
          )
        }
      </QueryView>
    </Card>
    <TaxReportCard />
    </div>
  );
}

// Issue 17: the year's Form 8949 rows and Schedule D totals from the engine's tax lots.
export function TaxReportCard() {
  const [year, setYear] = useState(new Date().getFullYear() - 1);
  return (
    <Card title="Tax report" subtitle="Form 8949 rows, Schedule D totals, open lots and wash-sale deferrals of a year" testId="tax-report">
      <div className="flex flex-wrap items-center gap-3 text-sm">
        <label className="flex items-center gap-2">
          Year
          <input
            type="number"
            min={1900}
            max={9999}
            value={year}
            onChange={(e) => setYear(Number(e.target.value))}
            className="w-24 rounded bg-slate-800 px-2 py-1 text-slate-100"
            data-testid="tax-report-year"
          />
        </label>
        <DownloadButton path="/tax-report/download" query={{ year, format: "html" }} fileName={`tax-report-${year}.html`} label="Download HTML" testId="tax-report-html" />
        <DownloadButton path="/tax-report/download" query={{ year, format: "csv" }} fileName={`tax-report-${year}.csv`} label="Download CSV" testId="tax-report-csv" />
      </div>
      <p className="mt-2 text-xs text-slate-500">Not tax advice: it sees only this account; your broker's Form 1099-B is the record.</p>
    </Card>
  );
}
