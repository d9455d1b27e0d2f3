// Seed task 23.6: launch a backtest through the same decision code, watch it, read its results.
import { useEffect, useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { useBacktestLaunch, useBacktestResult, useBacktests } from "../api/hooks";
import type { BacktestView, SignalSource } from "../api/types";
import { BacktestFields, backtestRequestFields, useBacktestFields } from "../components/BacktestFields";
import { EquityChart } from "../components/EquityChart";
import { DownloadButton } from "../components/Download";
import { Badge, Card, Empty, ErrorBox, QueryView, Stat, Table } from "../components/ui";
import { dateTime, day, label, money, pct, pnlClass, price, qty, ratio, signedMoney } from "../format";

const STATUS_TONE = { running: "sky", completed: "green", failed: "red" } as const;
const SIGNAL_OPTIONS: [SignalSource, string][] = [
  ["database", "recommendations"],
  ["momentum", "momentum (SMA 10/30)"],
];

export function BacktestPanel() {
  const [selected, setSelected] = useState<string | null>(null);
  return (
    <div className="grid gap-4 xl:grid-cols-3">
      <div className="space-y-4">
        <Card title="New backtest" subtitle="Replays daily bars through the live decision code" testId="backtest-form">
          <LaunchForm onLaunched={setSelected} />
        </Card>
        <Card title="Backtests" testId="backtest-list">
          <History selected={selected} onSelect={setSelected} />
        </Card>
      </div>
      <div className="xl:col-span-2">
        <Card title="Result" testId="backtest-result">
          {selected ? <Result id={selected} /> : <Empty>Launch a backtest or pick one from the list.</Empty>}
        </Card>
      </div>
    </div>
  );
}

function LaunchForm({ onLaunched }: { onLaunched: (id: string) => void }) {
  const launch = useBacktestLaunch();
  const [fields, setFields] = useBacktestFields();
  return (
    <form
      className="grid grid-cols-2 gap-3 text-xs text-slate-300"
      onSubmit={(e) => {
        e.preventDefault();
        launch.mutate(backtestRequestFields(fields), { onSuccess: (r) => onLaunched(r.backtest_id) });
      }}
    >
      <BacktestFields value={fields} onChange={setFields} signalOptions={SIGNAL_OPTIONS} error={launch.error} />
      <div className="col-span-2 flex items-center gap-3">
        <button className="btn-primary" type="submit" disabled={launch.isPending}>
          {launch.isPending ? "Starting…" : "Run backtest"}
        </button>
        <span className="text-slate-500">Needs the API token.</span>
      </div>
      {launch.error && (
        <div className="col-span-2">
          <ErrorBox error={launch.error} what="the backtest (not started)" />
        </div>
      )}
    </form>
  );
}

function History({ selected, onSelect }: { selected: string | null; onSelect: (id: string) => void }) {
  const list = useBacktests();
  return (
    <QueryView query={list} what="backtests">
      {(page) =>
        page.items.length === 0 ? (
          <Empty>No backtests yet.</Empty>
        ) : (
          <ul className="divide-y divide-slate-800 text-sm">
            {page.items.map((b) => (
              <li key={b.id}>
                <button className={`w-full px-2 py-2 text-left hover:bg-slate-800/50 ${selected === b.id ? "bg-slate-800/60" : ""}`} onClick={() => onSelect(b.id)}>
                  <div className="flex items-center justify-between">
                    <span className="text-slate-200">{day(b.start_date)} → {day(b.end_date)}</span>
                    <Badge tone={STATUS_TONE[b.status]}>{b.status === "running" ? `running ${pct(b.progress, 0)}` : b.status}</Badge>
                  </div>
                  <div className="mt-0.5 text-xs text-slate-400">
                    <span className="capitalize">{b.risk_tier}</span> · {money(b.initial_capital)}
                    {b.total_return !== null && <span className={pnlClass(b.total_return)}> · {pct(b.total_return, 1, true)}</span>}
                  </div>
                </button>
              </li>
            ))}
          </ul>
        )
      }
    </QueryView>
  );
}

function Result({ id }: { id: string }) {
  const result = useBacktestResult(id);
  const client = useQueryClient();
  const status = result.data?.status;
  useEffect(() => {
    // The list shows progress too: refresh it as soon as this run changes state.
    if (status) void client.invalidateQueries({ queryKey: ["backtests"] });
  }, [status, client]);
  return <QueryView query={result} what="the backtest">{(b) => <ResultView b={b} />}</QueryView>;
}

function ResultView({ b }: { b: BacktestView }) {
  return (
    <div className="space-y-4">
      <div className="flex flex-wrap items-center gap-2 text-sm text-slate-300">
        <Badge tone={STATUS_TONE[b.status]} testId="backtest-status">{b.status}</Badge>
        <span>
          {day(b.start_date)} → {day(b.end_date)} · <span className="capitalize">{b.risk_tier}</span> · {money(b.initial_capital)}
        </span>
        <span className="text-slate-500">started {dateTime(b.created_at)}</span>
        {b.status === "completed" && (
          <span className="ml-auto">
            <DownloadButton path="/tearsheet" query={{ backtest_id: b.id }} fileName={`tearsheet-${b.id}.html`} label="Download tearsheet" testId="tearsheet-backtest" />
          </span>
        )}
      </div>
      {b.status === "running" && (
        <div>
          <div className="h-2 overflow-hidden rounded bg-slate-800">
            <div className="h-full bg-sky-500 transition-all" style={{ width: `${Math.round(b.progress * 100)}%` }} />
          </div>
          <p className="mt-1 text-xs text-slate-400">{pct(b.progress, 0)} done; refreshing…</p>
        </div>
      )}
      {b.status === "failed" && <ErrorBox error={b.error_message ?? "no reason recorded"} what="the result: the backtest failed" />}
      <div className="grid grid-cols-2 gap-3 md:grid-cols-3 xl:grid-cols-6">
        <Stat label="Final value" value={money(b.final_value)} />
        <Stat label="Total return" value={pct(b.total_return, 1, true)} valueClass={pnlClass(b.total_return)} />
        <Stat label="Sharpe" value={ratio(b.sharpe_ratio)} />
        <Stat label="Max drawdown" value={pct(b.max_drawdown, 1)} />
        <Stat label="Win rate" value={pct(b.win_rate, 1)} />
        <Stat label="Profit factor" value={b.profit_factor_infinite ? "∞" : ratio(b.profit_factor)} hint={`${b.trade_count ?? 0} trades`} />
      </div>
      <EquityChart points={b.equity_curve} testId="backtest-equity" />
      {b.trades.length === 0 ? (
        <Empty>No trades in this backtest.</Empty>
      ) : (
        <div className="max-h-96 overflow-y-auto">
          <Table head={["Ticker", "Qty", "Entry", "Exit", "P&L", "Held", "Exit reason"]} align={["l", "r", "r", "r", "r", "r", "l"]}>
            {b.trades.map((t, i) => (
              <tr key={i} className="hover:bg-slate-800/40">
                <td className="px-2 py-1.5 font-semibold text-slate-100">{t.ticker}</td>
                <td className="px-2 py-1.5 text-right tabular-nums">{qty(t.quantity)}</td>
                <td className="px-2 py-1.5 text-right tabular-nums">{price(t.entry_price)} <span className="text-xs text-slate-500">{day(t.entry_date)}</span></td>
                <td className="px-2 py-1.5 text-right tabular-nums">{price(t.exit_price)} <span className="text-xs text-slate-500">{t.exit_date ? day(t.exit_date) : "open"}</span></td>
                <td className={`px-2 py-1.5 text-right tabular-nums ${pnlClass(t.pnl)}`}>{signedMoney(t.pnl)}</td>
                <td className="px-2 py-1.5 text-right tabular-nums">{t.hold_duration_days === null ? "—" : `${t.hold_duration_days} d`}</td>
                <td className="px-2 py-1.5">{label(t.exit_reason)}</td>
              </tr>
            ))}
          </Table>
        </div>
      )}
    </div>
  );
}
