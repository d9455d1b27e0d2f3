// Seed task 23.7: the micro-trading mode, its limits, and how its trades are doing.
import {
  newYorkDayStart,
  useAllRows,
  useEngineNow,
  usePositions,
  useTradingConfig,
  useTradingMetrics,
  useTradingStatus,
  useUpdateTradingConfig,
} from "../api/hooks";
import type { Trade } from "../api/types";
import { Badge, Card, Empty, ErrorBox, QueryView, Stat, Table } from "../components/ui";
import { dateTime, num, pct, pnlClass, price, qty, ratio, signedMoney } from "../format";

function summary(trades: Trade[]) {
  const micro = trades.filter((t) => t.is_micro_trade);
  const pnl = micro.reduce((a, t) => a + (num(t.pnl) ?? 0), 0);
  const wins = micro.filter((t) => (num(t.pnl) ?? 0) > 0).length;
  return { count: micro.length, pnl, winRate: micro.length ? wins / micro.length : null };
}

export function MicroPanel() {
  const config = useTradingConfig();
  const update = useUpdateTradingConfig();
  const metrics = useTradingMetrics();
  const positions = usePositions();
  // Days are the engine's session days (New York), by the engine's clock.
  const now = useEngineNow();
  const today = now === null ? null : newYorkDayStart(now);
  const weekStart = now === null ? null : newYorkDayStart(now, 6);
  // The daily limit counts micro entries, not closed trades: the engine's own count.
  const status = useTradingStatus();
  const week = useAllRows<Trade>("/trades", weekStart === null ? null : { since: weekStart });
  return (
    <div className="grid gap-4 xl:grid-cols-3">
      <Card title="Micro-trading mode" subtitle="Short intraday trades on 1d / intraday signals" testId="micro">
        <QueryView query={config} what="the configuration">
          {(c) => (
            <div className="space-y-3 text-sm">
              <div className="flex items-center gap-3">
                <Badge tone={c.micro_trading_enabled ? "green" : "slate"} testId="micro-state">{c.micro_trading_enabled ? "enabled" : "disabled"}</Badge>
                <button
                  className="btn-secondary"
                  disabled={update.isPending}
                  onClick={() => {
                    update.reset();
                    update.mutate({ micro_trading_enabled: !c.micro_trading_enabled });
                  }}
                >
                  {c.micro_trading_enabled ? "Turn off" : "Turn on"}
                </button>
              </div>
              {update.error && <ErrorBox error={update.error} what="the change (nothing was changed)" />}
              <dl className="grid grid-cols-2 gap-y-1 text-xs">
                <dt className="text-slate-400">Cap per trade</dt>
                <dd>{pct(c.micro_trading_allocation_cap_pct, 1)} of Active Pool</dd>
                <dt className="text-slate-400">Max a day</dt>
                <dd>{c.micro_trading_max_daily}</dd>
                <dt className="text-slate-400">Max hold</dt>
                <dd>{c.micro_trading_max_hold_minutes} min</dd>
                <dt className="text-slate-400" title="While a micro-trade is held, its stops and its maximum hold are checked at least this often (never more often than the engine's polling interval)">Checked every</dt>
                <dd data-testid="micro-interval">{Number(c.micro_trading_interval_seconds)} s while held</dd>
              </dl>
            </div>
          )}
        </QueryView>
      </Card>
      <Card title="Micro-trades" subtitle="Today and the last 7 days, in the engine's session days (New York)" className="xl:col-span-2">
        <div className="grid grid-cols-2 gap-3 md:grid-cols-5">
          <QueryView query={status} what="the engine's status">
            {(s) => (
              <Stat
                label="Entries today"
                value={s.micro_entries_today}
                hint={`limit ${config.data?.micro_trading_max_daily ?? "—"} a day`}
                testId="micro-entries-today"
              />
            )}
          </QueryView>
          <QueryView query={week} what="recent trades">
            {(page) => {
              const closedToday = summary(page.items.filter((t) => Date.parse(t.exit_at) >= Date.parse(today ?? "")));
              const seven = summary(page.items);
              const partial = page.items.length < page.total ? `; of the latest ${page.items.length} trades only` : "";
              return (
                <>
                  <Stat label="Closed today" value={closedToday.count} hint="micro-trades" testId="micro-closed-today" />
                  <Stat label="Today's P&L" value={closedToday.count ? signedMoney(closedToday.pnl) : "—"} valueClass={closedToday.count ? pnlClass(closedToday.pnl) : undefined} testId="micro-today-pnl" />
                  <Stat label="Closed, 7 days" value={seven.count} hint={`win rate ${pct(seven.winRate, 0)}${partial}`} testId="micro-7d-count" />
                  <Stat label="7-day P&L" value={seven.count ? signedMoney(seven.pnl) : "—"} valueClass={seven.count ? pnlClass(seven.pnl) : undefined} testId="micro-7d-pnl" />
                </>
              );
            }}
          </QueryView>
        </div>
        <div className="mt-3">
          <QueryView query={metrics} what="metrics">
            {(m) => m.micro.trade_count === 0 ? (
              <p className="text-xs text-slate-500">No micro-trades closed yet.</p>
            ) : (
              <p className="text-xs text-slate-400">
                All time: {m.micro.trade_count} micro-trades, win rate {pct(m.micro.win_rate, 1)}, profit factor{" "}
                {m.micro.profit_factor_infinite ? "∞" : ratio(m.micro.profit_factor)}, realized {signedMoney(m.micro.realized_pnl)}.
              </p>
            )}
          </QueryView>
        </div>
      </Card>
      <Card title="Active micro positions" className="xl:col-span-3">
        <QueryView query={positions} what="positions">
          {(p) => {
            const micro = p.items.filter((x) => x.is_micro_trade);
            return micro.length === 0 ? (
              <Empty>No micro positions open.</Empty>
            ) : (
              <Table head={["Ticker", "Qty", "Entry", "Current", "Unrealized", "Stop", "Target", "Opened"]} align={["l", "r", "r", "r", "r", "r", "r", "l"]}>
                {micro.map((x) => (
                  <tr key={x.ticker}>
                    <td className="px-2 py-2 font-semibold">{x.ticker}</td>
                    <td className="px-2 py-2 text-right">{qty(x.quantity)}</td>
                    <td className="px-2 py-2 text-right">{price(x.entry_price)}</td>
                    <td className="px-2 py-2 text-right">{price(x.current_price)}</td>
                    <td className={`px-2 py-2 text-right ${pnlClass(x.unrealized_pnl)}`}>{signedMoney(x.unrealized_pnl)}</td>
                    <td className="px-2 py-2 text-right">{price(x.stop_loss_price)}</td>
                    <td className="px-2 py-2 text-right">{price(x.take_profit_price)}</td>
                    <td className="px-2 py-2">{dateTime(x.opened_at)}</td>
                  </tr>
                ))}
              </Table>
            );
          }}
        </QueryView>
      </Card>
    </div>
  );
}
