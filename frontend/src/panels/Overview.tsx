// Seed task 23.2: the engine at a glance, and the owner's controls.
import { useState } from "react";
import {
  useAcknowledgeDiscrepancy,
  useAllRows,
  useClearHalt,
  useEngineNow,
  useHaltTrading,
  usePauseTradingEngine,
  useReconciliation,
  useResumeTradingEngine,
  useTradingDecisions,
  useTradingMetrics,
  useTierHistory,
  useTradingConfig,
  useTradingStatus,
  useUpdateTradingConfig,
} from "../api/hooks";
import { TIERS, type Status, type Tier, type Trade } from "../api/types";
import { Badge, Card, Empty, ErrorBox, QueryView, Stat, Table } from "../components/ui";
import { dateTime, duration, label, money, num, pct, pnlClass, price, qty, signedMoney } from "../format";

export function engineState(s: Status): { text: string; tone: "green" | "amber" | "red" | "slate" } {
  if (s.circuit_breaker.active) return { text: "halted by circuit breaker", tone: "red" };
  if (!s.enabled) return { text: "disabled", tone: "slate" };
  if (s.paused) return { text: "paused", tone: "amber" };
  return { text: "trading", tone: "green" };
}

// Paper or real money, and where orders go: always in sight, amber when the money is real.
export function tradingAccount(s: Status): { text: string; tone: "amber" | "sky" } {
  const broker = s.broker === "alpaca" ? "Alpaca" : "paper broker";
  return s.trading_mode === "live" ? { text: `LIVE · ${broker}`, tone: "amber" } : { text: `PAPER · ${broker}`, tone: "sky" };
}

export function OverviewPanel() {
  const status = useTradingStatus();
  return (
    <div className="grid gap-4 xl:grid-cols-3">
      <Card title="Trading engine" subtitle="Refreshes every 5 s" className="xl:col-span-2" testId="overview">
        <QueryView query={status} what="the engine status">
          {(s) => <StatusGrid status={s} />}
        </QueryView>
      </Card>
      <Card title="Controls" testId="controls">
        <QueryView query={status} what="the engine status">
          {(s) => <Controls status={s} />}
        </QueryView>
      </Card>
      <Card title="Circuit breaker" testId="breaker">
        <QueryView query={status} what="the circuit breaker">
          {(s) => <Breaker status={s} />}
        </QueryView>
      </Card>
      <Card title="Reconciliation with the broker" subtitle="The broker's account against the engine's books" testId="reconciliation">
        <QueryView query={status} what="the engine status">
          {(s) => <ReconciliationCard status={s} />}
        </QueryView>
      </Card>
      <Card title="Portfolio heat" subtitle="Open risk to stops, as a share of total value" testId="heat">
        <QueryView query={status} what="portfolio heat">
          {(s) => <HeatGauge heat={num(s.portfolio_heat) ?? 0} max={num(s.max_portfolio_heat) ?? 0} />}
        </QueryView>
      </Card>
      <Card title="Last 24 hours" testId="last-24h">
        <Last24h />
      </Card>
      <Card title="Open positions" subtitle="At the latest prices; details under Portfolio" className="xl:col-span-2">
        <QueryView query={status} what="positions">
          {(s) => <PositionsSummary status={s} />}
        </QueryView>
      </Card>
      <Card title="Latest decisions" subtitle="Details and traces under Decisions">
        <LatestDecisions />
      </Card>
      <Card title="Risk tier history" subtitle="Every change, and each close that held the tier, with why" className="xl:col-span-3" testId="tier-history">
        <TierHistory />
      </Card>
    </div>
  );
}

function StatusGrid({ status: s }: { status: Status }) {
  const state = engineState(s);
  const account = tradingAccount(s);
  const loop = s.engine.loop_running ? "engine loop running here" : s.engine.attached ? "engine attached, loop driven elsewhere" : "engine loop runs in another process";
  return (
    <div>
      <div className="mb-3 flex flex-wrap items-center gap-2 text-sm">
        <Badge tone={account.tone} testId="trading-account">{account.text}</Badge>
        <Badge tone={state.tone} testId="engine-state">{state.text}</Badge>
        <span className="text-slate-400">{loop}</span>
        {s.engine.error && <Badge tone="red">loop stopped: {s.engine.error}</Badge>}
      </div>
      <div className="grid grid-cols-2 gap-3 md:grid-cols-4">
        <Stat label="Risk tier" value={<span className="capitalize">{s.risk_tier}</span>} testId="risk-tier" />
        <Stat label="Active Pool" value={money(s.active_pool)} hint="total value − Reserve Pool" testId="active-pool" />
        <Stat label="Reserve Pool" value={money(s.reserve_pool)} hint="siphoned profits, kept out of play" testId="reserve-pool" />
        <Stat label="Total value" value={money(s.total_value)} hint={`cash ${money(s.cash)}`} testId="total-value" />
        <Stat label="Open positions" value={s.open_position_count} testId="open-positions" />
        <Stat label="Portfolio heat" value={pct(s.portfolio_heat)} hint={`limit ${pct(s.max_portfolio_heat, 0)}`} />
        <Stat label="Last decision" value={<span className="text-base">{dateTime(s.last_decision_at)}</span>} />
        <Stat label="As of" value={<span className="text-base">{dateTime(s.as_of)}</span>} />
      </div>
    </div>
  );
}

function Controls({ status: s }: { status: Status }) {
  const pause = usePauseTradingEngine();
  const resume = useResumeTradingEngine();
  const update = useUpdateTradingConfig();
  const [tier, setTier] = useState<Tier | "">("");
  const busy = pause.isPending || resume.isPending || update.isPending;
  const error = pause.error ?? resume.error ?? update.error;
  const reset = () => [pause, resume, update].forEach((m) => m.reset());
  return (
    <div className="space-y-4 text-sm">
      <div className="flex flex-wrap gap-2">
        <button data-testid="pause-button" className="btn-danger" disabled={busy || s.paused} onClick={() => { reset(); pause.mutate(); }}>
          Pause
        </button>
        <button data-testid="resume-button" className="btn-primary" disabled={busy || !s.paused} onClick={() => { reset(); resume.mutate(); }}>
          Resume
        </button>
        <button
          data-testid="enable-button"
          className="btn-secondary"
          disabled={busy}
          onClick={() => {
            const next = !s.enabled;
            if (next && !window.confirm("Enable autonomous trading? The engine will place real orders on this account.")) return;
            reset();
            update.mutate({ enabled: next });
          }}
        >
          {s.enabled ? "Disable trading" : "Enable trading"}
        </button>
      </div>
      <p className="text-xs text-slate-400">
        Pause stops new entries; open positions stay protected by their stops. Trading also needs the owner's enable switch
        (now <strong className="text-slate-200">{s.enabled ? "on" : "off"}</strong>).
      </p>
      <form
        className="flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          if (!tier || tier === s.risk_tier) return;
          reset();
          update.mutate({ risk_tier: tier }, { onSuccess: () => setTier("") });
        }}
      >
        <label className="text-xs text-slate-300">
          Risk tier
          <select data-testid="tier-select" className="input mt-1 block w-44 capitalize" value={tier || s.risk_tier} onChange={(e) => setTier(e.target.value as Tier)}>
            {TIERS.map((t) => (
              <option key={t} value={t}>{t}</option>
            ))}
          </select>
        </label>
        <button className="btn-secondary" disabled={busy || !tier || tier === s.risk_tier} type="submit">
          Apply tier
        </button>
      </form>
      {busy && <p className="text-xs text-slate-400">Sending…</p>}
      {error && <ErrorBox error={error} what="the change (nothing was changed)" />}
    </div>
  );
}

function Breaker({ status: s }: { status: Status }) {
  const now = useEngineNow() ?? Date.parse(s.as_of);
  const b = s.circuit_breaker;
  const cooldowns = b.ticker_cooldowns.filter((c) => Date.parse(c.until) > now);
  const left = b.until ? (Date.parse(b.until) - now) / 1000 : null;
  return (
    <div className="space-y-3 text-sm">
      {b.active ? (
        <div className="rounded-lg border border-rose-800 bg-rose-950/40 p-3">
          <div className="flex items-center gap-2">
            <Badge tone="red" testId="breaker-state">active</Badge>
            <span className="font-medium text-rose-200">{label(b.trigger)}</span>
          </div>
          {b.reason && <p className="mt-2 text-rose-100">{b.reason}</p>}
          <dl className="mt-2 grid grid-cols-2 gap-1 text-xs text-rose-200/80">
            <dt>Triggered</dt>
            <dd>{dateTime(b.triggered_at)}</dd>
            <dt>Time left</dt>
            <dd data-testid="breaker-time-left">{left === null ? "until resolved by hand" : left > 0 ? duration(left) : "ending…"}</dd>
          </dl>
        </div>
      ) : (
        <div className="flex items-center gap-2">
          <Badge tone="green" testId="breaker-state">inactive</Badge>
          <span className="text-slate-400">No trading halt in force.</span>
        </div>
      )}
      <ManualHalt status={s} />
      <div>
        <div className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Ticker cooldowns</div>
        {cooldowns.length === 0 ? (
          <p className="text-xs text-slate-500">None.</p>
        ) : (
          <ul className="space-y-1 text-xs">
            {cooldowns.map((c) => (
              <li key={c.ticker} className="flex justify-between">
                <span className="font-medium text-slate-200">{c.ticker}</span>
                <span className="text-slate-400">{duration((Date.parse(c.until) - now) / 1000)} left</span>
              </li>
            ))}
          </ul>
        )}
      </div>
    </div>
  );
}

// The owner's own breaker (issue 15): halts every new entry until cleared; stops and exits
// still run. Clearing ends only this halt: an automatic one in force stays until it ends.
function ManualHalt({ status: s }: { status: Status }) {
  const halt = useHaltTrading();
  const clear = useClearHalt();
  const [reason, setReason] = useState("");
  const manual = s.circuit_breaker.active && s.circuit_breaker.trigger === "manual";
  const busy = halt.isPending || clear.isPending;
  const error = halt.error ?? clear.error;
  const reset = () => [halt, clear].forEach((m) => m.reset());
  return (
    <div className="space-y-2 border-t border-slate-800 pt-3">
      {manual ? (
        <button data-testid="clear-halt-button" className="btn-primary" disabled={busy} onClick={() => { reset(); clear.mutate(); }}>
          Clear the halt
        </button>
      ) : (
        <form
          className="flex flex-wrap items-end gap-2"
          onSubmit={(e) => {
            e.preventDefault();
            if (!reason.trim()) return;
            reset();
            halt.mutate(reason.trim(), { onSuccess: () => setReason("") });
          }}
        >
          <label className="text-xs text-slate-300">
            Reason
            <input
              data-testid="halt-reason"
              className="input mt-1 block w-56"
              maxLength={500}
              placeholder="why trading stops"
              value={reason}
              onChange={(e) => setReason(e.target.value)}
            />
          </label>
          <button data-testid="halt-button" className="btn-danger" disabled={busy || !reason.trim()} type="submit">
            Halt all trading now
          </button>
        </form>
      )}
      <p className="text-xs text-slate-400">
        A halt refuses every new entry until you clear it; stops and exits still run.
      </p>
      {error && <ErrorBox error={error} what="the change (nothing was changed)" />}
    </div>
  );
}

// Issue 14: what the last reconciliation found, each open finding with its rule, and the
// owner's acknowledgement (the last unexplained one acknowledged ends the pause on entries).
function ReconciliationCard({ status: s }: { status: Status }) {
  const query = useReconciliation();
  const acknowledge = useAcknowledgeDiscrepancy();
  return (
    <QueryView query={query} what="reconciliation">
      {(r) => {
        const last = r.runs[0];
        return (
          <div className="space-y-3 text-sm">
            {r.paused && (
              <Badge tone="red" testId="reconciliation-paused">new entries paused until you acknowledge</Badge>
            )}
            {last ? (
              <p className="text-slate-300" data-testid="reconciliation-last">
                Last run {dateTime(last.finished_at ?? last.started_at)} ({last.trigger}):{" "}
                <span className={last.status === "agreed" ? "text-emerald-400" : "text-amber-400"}>{label(last.status)}</span>
                {last.error ? ` — ${last.error}` : ""}
              </p>
            ) : (
              <p className="text-slate-400" data-testid="reconciliation-last">
                {s.broker === "alpaca" ? "No reconciliation has run yet." : "The paper broker is the engine's own books: nothing to reconcile."}
              </p>
            )}
            {r.account && r.account.buying_power !== null && (
              <p className="text-xs text-slate-400">
                Broker: cash {money(r.account.cash)}, buying power {money(r.account.buying_power)}, equity {money(r.account.equity)}
              </p>
            )}
            {r.open.length === 0 ? (
              <p className="text-xs text-slate-500">No open differences.</p>
            ) : (
              <ul className="space-y-2" data-testid="reconciliation-open">
                {r.open.map((d) => (
                  <li key={d.id} className="rounded border border-slate-800 p-2" data-testid={`discrepancy-${d.id}`}>
                    <div className="flex items-center justify-between gap-2">
                      <span className="font-medium text-slate-100">
                        {label(d.kind)} {d.ticker ?? ""}
                      </span>
                      <Badge tone={d.pauses ? "red" : "amber"}>{label(d.resolution)}</Badge>
                    </div>
                    <div className="text-xs text-slate-400">
                      engine {d.kind === "cash" ? money(d.engine_figure) : qty(d.engine_figure)} · broker{" "}
                      {d.kind === "cash" ? money(d.broker_figure) : qty(d.broker_figure)}
                    </div>
                    <p className="mt-1 text-xs text-slate-300">{d.rule}</p>
                    <button
                      data-testid={`acknowledge-${d.id}`}
                      className="btn-primary mt-2"
                      disabled={acknowledge.isPending}
                      onClick={() => { acknowledge.reset(); acknowledge.mutate(d.id); }}
                    >
                      Acknowledge
                    </button>
                  </li>
                ))}
              </ul>
            )}
            {acknowledge.error && <ErrorBox error={acknowledge.error} what="the acknowledgement (nothing was changed)" />}
          </div>
        );
      }}
    </QueryView>
  );
}

export function HeatGauge({ heat, max }: { heat: number; max: number }) {
  // A half-circle gauge scaled to the tier's limit; the tick at 80% is where stops tighten.
  const share = max > 0 ? Math.min(heat / max, 1.2) : 0;
  const angle = Math.PI * (1 - Math.min(share, 1));
  const r = 70;
  const x = 90 + r * Math.cos(angle);
  const y = 90 - r * Math.sin(angle);
  const color = share >= 1 ? "#f43f5e" : share >= 0.8 ? "#f59e0b" : "#10b981";
  const tick = Math.PI * 0.2;
  return (
    <div className="flex flex-col items-center" data-testid="heat-gauge">
      <svg viewBox="0 0 180 100" className="w-full max-w-xs">
        <path d="M20 90 A70 70 0 0 1 160 90" fill="none" stroke="#1e293b" strokeWidth="14" strokeLinecap="round" />
        {share > 0 && (
          <path d={`M20 90 A70 70 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`} fill="none" stroke={color} strokeWidth="14" strokeLinecap="round" />
        )}
        <line x1={90 + 60 * Math.cos(tick)} y1={90 - 60 * Math.sin(tick)} x2={90 + 82 * Math.cos(tick)} y2={90 - 82 * Math.sin(tick)} stroke="#f59e0b" strokeWidth="2" />
        <text x="90" y="78" textAnchor="middle" className="fill-slate-100" fontSize="20" fontWeight="600">
          {pct(heat, 1)}
        </text>
        <text x="90" y="95" textAnchor="middle" className="fill-slate-400" fontSize="9">
          of {pct(max, 0)} limit
        </text>
      </svg>
      <p className="mt-1 text-center text-xs text-slate-400">
        {share >= 1 ? "At the limit: new entries are refused." : share >= 0.8 ? "Above 80% of the limit: stops of the least confident positions tighten." : "Room for new entries."}
      </p>
    </div>
  );
}

function Last24h() {
  const metrics = useTradingMetrics();
  // By the engine's clock, rounded to the minute so the query key does not change every second.
  const now = useEngineNow();
  const since = now === null ? null : new Date(Math.floor(now / 60_000) * 60_000 - 86_400_000).toISOString();
  const trades = useAllRows<Trade>("/trades", since === null ? null : { since });
  return (
    <div className="grid grid-cols-2 gap-3">
      <QueryView query={metrics} what="metrics">
        {(m) => <Stat label="P&L today" value={signedMoney(m.daily_pnl)} valueClass={pnlClass(m.daily_pnl)} hint="since the session's start value" testId="daily-pnl" />}
      </QueryView>
      <QueryView query={trades} what="recent trades">
        {(t) => {
          const sum = t.items.reduce((acc, x) => acc + (num(x.pnl) ?? 0), 0);
          const partial = t.items.length < t.total ? ` (sum of the latest ${t.items.length})` : "";
          return (
            <Stat
              label="Realized, 24 h"
              value={t.total === 0 ? "—" : signedMoney(sum)}
              valueClass={t.total === 0 ? undefined : pnlClass(sum)}
              hint={t.total === 0 ? "no trades closed in the engine's last 24 h" : `${t.total} trade${t.total === 1 ? "" : "s"} closed${partial}`}
              testId="realized-24h"
            />
          );
        }}
      </QueryView>
    </div>
  );
}

function PositionsSummary({ status: s }: { status: Status }) {
  if (s.open_positions.length === 0) return <Empty>No open positions.</Empty>;
  return (
    <Table head={["Ticker", "Qty", "Entry", "Current", "Unrealized P&L", "Stop", "Take-profit"]} align={["l", "r", "r", "r", "r", "r", "r"]}>
      {s.open_positions.map((p) => (
        <tr key={p.ticker}>
          <td className="px-2 py-1.5 font-semibold text-slate-100">
            {p.ticker} <span className="text-xs font-normal text-slate-500">{p.sector}</span>
          </td>
          <td className="px-2 py-1.5 text-right tabular-nums">{qty(p.quantity)}</td>
          <td className="px-2 py-1.5 text-right tabular-nums">{price(p.entry_price)}</td>
          <td className="px-2 py-1.5 text-right tabular-nums">{price(p.current_price)}</td>
          <td className={`px-2 py-1.5 text-right tabular-nums ${pnlClass(p.unrealized_pnl)}`}>
            {signedMoney(p.unrealized_pnl)} <span className="text-xs opacity-80">({pct(p.unrealized_pnl_pct, 2, true)})</span>
          </td>
          <td className="px-2 py-1.5 text-right tabular-nums">{price(p.stop_loss_price)}</td>
          <td className="px-2 py-1.5 text-right tabular-nums">{price(p.take_profit_price)}</td>
        </tr>
      ))}
    </Table>
  );
}

function LatestDecisions() {
  const decisions = useTradingDecisions({ limit: 6, offset: 0 });
  return (
    <QueryView query={decisions} what="decisions">
      {(page) =>
        page.items.length === 0 ? (
          <Empty>No decisions yet.</Empty>
        ) : (
          <ul className="space-y-2 text-sm">
            {page.items.map((d) => (
              <li key={d.id} className="flex items-start gap-2">
                <Badge tone={d.decision === "act" ? "green" : "slate"}>{d.decision}</Badge>
                <div className="min-w-0">
                  <div className="text-slate-200">
                    <span className="font-semibold">{d.ticker}</span> {d.side}{" "}
                    <span className="text-xs text-slate-500">{dateTime(d.created_at)}</span>
                  </div>
                  <div className="truncate text-xs text-slate-400" title={d.skip_reason ?? d.category}>
                    {d.decision === "skip" ? d.skip_reason : `${label(d.category)} · ${qty(d.computed_share_quantity)} shares, ${money(d.computed_position_size)}`}
                  </div>
                </div>
              </li>
            ))}
          </ul>
        )
      }
    </QueryView>
  );
}

// Issue 15: the autopilot explains itself. Changes by default; "held" shows each close's verdict.
function TierHistory() {
  const [showHeld, setShowHeld] = useState(false);
  const history = useTierHistory(showHeld ? undefined : "changed");
  const config = useTradingConfig();
  const c = config.data;
  return (
    <div className="space-y-3 text-sm">
      <div className="flex flex-wrap items-center gap-3 text-xs text-slate-400">
        {c && (
          <span data-testid="tier-rule">
            Autopilot rule <strong className="text-slate-200">{c.risk_tier_rule}</strong>
            {c.risk_tier_rule === "guarded" &&
              ` — win rate judged on ${c.risk_tier_min_trades}+ trades, ${c.risk_tier_min_sessions} sessions before another drop, recovery after ${
                c.risk_tier_recovery_sessions || "never"
              }${c.risk_tier_recovery_sessions ? " quiet sessions" : ""}`}
          </span>
        )}
        <label className="flex items-center gap-1">
          <input type="checkbox" checked={showHeld} onChange={(e) => setShowHeld(e.target.checked)} /> show held closes
        </label>
      </div>
      <QueryView query={history} what="the risk tier history">
        {(page) =>
          page.items.length === 0 ? (
            <Empty>{showHeld ? "No verdict yet: the first session close gives one." : "The tier has not changed."}</Empty>
          ) : (
            <Table head={["When", "Verdict", "Tier", "Why"]}>
              {page.items.map((v) => (
                <tr key={v.id}>
                  <td className="px-2 py-1.5 whitespace-nowrap">{dateTime(v.created_at)}</td>
                  <td className="px-2 py-1.5">
                    <Badge tone={v.verdict === "changed" ? "amber" : "slate"}>{v.verdict}</Badge>
                  </td>
                  <td className="px-2 py-1.5 whitespace-nowrap capitalize">
                    {v.verdict === "changed" ? `${v.previous_tier} → ${v.new_tier}` : v.new_tier}
                  </td>
                  <td className="px-2 py-1.5 text-slate-300">{v.reason || label(v.trigger_source)}</td>
                </tr>
              ))}
            </Table>
          )
        }
      </QueryView>
    </div>
  );
}
