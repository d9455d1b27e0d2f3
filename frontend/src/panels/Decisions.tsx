// Every act/skip decision with the reason and its full reasoning trace (seed task 20.1).
import { Fragment, useState } from "react";
import { useTradingDecisions, type DecisionFilters } from "../api/hooks";
import type { Decision } from "../api/types";
import { Badge, Card, Empty, Pager, QueryView, Table } from "../components/ui";
import { FilterBar, isoDay } from "../components/Filters";
import { dateTime, label, money, pct, qty } from "../format";

const LIMIT = 25;

export function DecisionsPanel() {
  const [filters, setFilters] = useState<DecisionFilters>({ limit: LIMIT, offset: 0 });
  const [kind, setKind] = useState<"" | "act" | "skip">("");
  const [open, setOpen] = useState<string | null>(null);
  const decisions = useTradingDecisions(filters);
  return (
    <Card title="Decisions" subtitle="Act or skip, with the reason; click a row for its reasoning trace" testId="decisions">
      <FilterBar
        onApply={(f) =>
          setFilters({ limit: LIMIT, offset: 0, ticker: f.ticker || undefined, decision: kind || undefined, since: isoDay(f.since), until: isoDay(f.until) })
        }
      >
        <label>
          Decision
          <select className="input mt-1 block" value={kind} onChange={(e) => setKind(e.target.value as "" | "act" | "skip")}>
            <option value="">any</option>
            <option value="act">act</option>
            <option value="skip">skip</option>
          </select>
        </label>
      </FilterBar>
      <QueryView query={decisions} what="decisions">
        {(page) =>
          page.items.length === 0 ? (
            <Empty>{filters.ticker || filters.decision || filters.since || filters.until ? "No decisions match." : "No decisions yet."}</Empty>
          ) : (
            <>
              <Table testId="decisions-table" head={["When", "Ticker", "Side", "Decision", "Reason / rule", "Shares", "Size", "Tier"]} align={["l", "l", "l", "l", "l", "r", "r", "l"]}>
                {page.items.map((d) => (
                  <Fragment key={d.id}>
                    <tr
                      data-testid="decision-row"
                      className="cursor-pointer hover:bg-slate-800/40"
                      onClick={() => setOpen(open === d.id ? null : d.id)}
                      aria-expanded={open === d.id}
                    >
                      <td className="px-2 py-2 whitespace-nowrap text-slate-400">
                        <span className="mr-1 inline-block w-3 text-slate-500">{open === d.id ? "▾" : "▸"}</span>
                        {dateTime(d.created_at)}
                      </td>
                      <td className="px-2 py-2 font-semibold text-slate-100">{d.ticker}</td>
                      <td className="px-2 py-2">{d.side}</td>
                      <td className="px-2 py-2">
                        <Badge tone={d.decision === "act" ? "green" : "slate"}>{d.decision}</Badge> {d.is_micro_trade && <Badge tone="sky">micro</Badge>}
                      </td>
                      <td className="max-w-md px-2 py-2 text-slate-300">
                        {d.decision === "skip" ? d.skip_reason : label(d.category)}
                      </td>
                      <td className="px-2 py-2 text-right tabular-nums">{d.decision === "act" ? qty(d.computed_share_quantity) : "—"}</td>
                      <td className="px-2 py-2 text-right tabular-nums">{d.decision === "act" ? money(d.computed_position_size) : "—"}</td>
                      <td className="px-2 py-2 capitalize">{d.risk_tier_at_decision}</td>
                    </tr>
                    {open === d.id && (
                      <tr>
                        <td colSpan={8} className="bg-slate-950/60 px-3 py-3">
                          <Trace decision={d} />
                        </td>
                      </tr>
                    )}
                  </Fragment>
                ))}
              </Table>
              <Pager offset={filters.offset} limit={LIMIT} total={page.total} onChange={(offset) => setFilters({ ...filters, offset })} />
            </>
          )
        }
      </QueryView>
    </Card>
  );
}

interface Check {
  check?: string;
  detail?: string;
  passed?: boolean;
}

function Trace({ decision: d }: { decision: Decision }) {
  const [raw, setRaw] = useState(false);
  const trace = d.decision_trace as { checks?: Check[]; recommendation?: { thesis?: string; confidence?: number; generated_at?: string } };
  const checks = Array.isArray(trace.checks) ? trace.checks : [];
  return (
    <div data-testid="decision-trace" className="grid gap-4 text-xs lg:grid-cols-3">
      <div className="lg:col-span-2">
        <div className="mb-1 font-medium tracking-wider text-slate-400 uppercase">Checks, in order</div>
        {checks.length === 0 ? (
          <p className="text-slate-500">The trace lists no checks.</p>
        ) : (
          <ol className="space-y-1">
            {checks.map((c, i) => (
              <li key={i} className="flex gap-2">
                <span className={c.passed === false ? "text-rose-400" : "text-emerald-400"}>{c.passed === false ? "✗" : "✓"}</span>
                <span className="w-28 shrink-0 text-slate-400">{label(c.check)}</span>
                <span className="text-slate-200">{c.detail}</span>
              </li>
            ))}
          </ol>
        )}
      </div>
      <dl className="grid grid-cols-2 content-start gap-x-3 gap-y-1">
        <dt className="text-slate-400">Recommendation</dt>
        <dd>{d.recommendation_id ?? "—"}{trace.recommendation?.confidence !== undefined && ` · confidence ${trace.recommendation.confidence}`}</dd>
        <dt className="text-slate-400">Active Pool then</dt>
        <dd className="tabular-nums">{money(d.active_pool_at_decision)}</dd>
        <dt className="text-slate-400">Reserve Pool then</dt>
        <dd className="tabular-nums">{money(d.reserve_pool_at_decision)}</dd>
        <dt className="text-slate-400">Heat then</dt>
        <dd className="tabular-nums">{pct(d.portfolio_heat_at_decision)}</dd>
        <dt className="text-slate-400">Breaker</dt>
        <dd>{label(d.circuit_breaker_status)}</dd>
        <dt className="text-slate-400">Earnings near</dt>
        <dd>{d.earnings_proximity_flag ? "yes" : "no"}</dd>
        {trace.recommendation?.thesis && (
          <>
            <dt className="text-slate-400">Thesis</dt>
            <dd className="text-slate-300">{trace.recommendation.thesis}</dd>
          </>
        )}
      </dl>
      <div className="lg:col-span-3">
        <button className="text-sky-400 hover:underline" onClick={() => setRaw(!raw)}>
          {raw ? "Hide" : "Show"} the full trace (JSON)
        </button>
        {raw && (
          <pre className="mt-2 max-h-96 overflow-auto rounded bg-slate-950 p-2 text-[11px] text-slate-300">
            {JSON.stringify({ trace: d.decision_trace, correlation: d.correlation_check_result, sector: d.sector_exposure_check_result }, null, 2)}
          </pre>
        )}
      </div>
    </div>
  );
}
