// TanStack Query hooks for every trading endpoint (seed task 23.1). Reads refresh on their
// own; a change invalidates what it affects, so the panels show the engine's word, not ours.
import { useEffect, useState } from "react";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "./client";
import type {
  Acknowledgement,
  BacktestAccepted,
  BacktestRequest,
  BacktestSummary,
  BacktestView,
  Config,
  ConfigChange,
  Decision,
  BreakerChange,
  EngineSwitch,
  Metrics,
  NotificationRecord,
  NotificationSettings,
  OptimizationAccepted,
  OptimizationRequest,
  OptimizationSummary,
  OptimizationView,
  Page,
  Positions,
  Reconciliation,
  Snapshot,
  Status,
  TierVerdict,
  TunableParameter,
  Trade,
} from "./types";

export const REFRESH_MS = { fast: 5_000, normal: 15_000, slow: 60_000 } as const;

export function useTradingStatus() {
  return useQuery({
    queryKey: ["status"],
    queryFn: () => api<Status>("GET", "/status"),
    refetchInterval: REFRESH_MS.fast,
  });
}

/** The current time by the browser, ticking: countdowns stay live between refetches. */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const id = window.setInterval(() => setNow(Date.now()), intervalMs);
    return () => window.clearInterval(id);
  }, [intervalMs]);
  return now;
}

/** "Now" by the engine's clock (status.as_of, advanced by the time since it was read), in ms:
 * a replay runs on a simulated clock, and every window and countdown must use the engine's.
 * Null until the first status. */
export function useEngineNow(): number | null {
  const status = useTradingStatus();
  const browserNow = useNow();
  if (!status.data) return null;
  return Date.parse(status.data.as_of) + Math.max(0, browserNow - status.dataUpdatedAt);
}

const NEW_YORK = new Intl.DateTimeFormat("en-US", {
  timeZone: "America/New_York", year: "numeric", month: "numeric", day: "numeric",
  hour: "numeric", minute: "numeric", second: "numeric", hourCycle: "h23",
});

/** New York's wall-clock time at `ms`, read as if it were UTC. */
function newYorkWall(ms: number): number {
  const p = Object.fromEntries(NEW_YORK.formatToParts(ms).map((x) => [x.type, Number(x.value)]));
  return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
}

/** Midnight in New York (the engine's session day) `daysAgo` days before the day of `ms`, as an ISO instant. */
export function newYorkDayStart(ms: number, daysAgo = 0): string {
  const instant = Math.floor(ms / 1000) * 1000;
  const wall = newYorkWall(instant);
  const midnight = wall - (wall % 86_400_000) - daysAgo * 86_400_000;
  const guess = midnight - (wall - instant); // New York's offset may differ at midnight (DST): take it there
  return new Date(midnight - (newYorkWall(guess) - guess)).toISOString();
}

type Query = Record<string, string | number | undefined>;

/** Every row of a list endpoint that matches `query`, read by pages of 500 up to `max` rows;
 * `total` says how many matched, so a caller can tell when it got only the newest `max`. */
async function allRows<T>(path: string, query: Query, max = 5_000): Promise<Page<T>> {
  const items: T[] = [];
  let total = 0;
  for (let offset = 0; offset < max; offset += 500) {
    const page = await api<Page<T>>("GET", path, { query: { ...query, limit: Math.min(500, max - offset), offset } });
    items.push(...page.items);
    total = page.total;
    if (page.items.length === 0 || items.length >= total) break;
  }
  return { items, total, limit: max, offset: 0 };
}

/** All trades or decisions matching `query` (e.g. a time window), for sums the API does not make.
 * Waits while `query` is null (e.g. for the engine's clock). */
export function useAllRows<T extends Trade | Decision>(path: "/trades" | "/decisions", query: Query | null) {
  return useQuery({
    queryKey: [path.slice(1), "all", query],
    queryFn: () => allRows<T>(path, query ?? {}),
    enabled: query !== null,
    refetchInterval: REFRESH_MS.normal,
    placeholderData: keepPreviousData,
  });
}

export function usePositions() {
  return useQuery({
    queryKey: ["positions"],
    queryFn: () => api<Positions>("GET", "/positions"),
    refetchInterval: REFRESH_MS.normal,
  });
}

export interface DecisionFilters {
  ticker?: string;
  decision?: "act" | "skip" | "";
  since?: string;
  until?: string;
  limit: number;
  offset: number;
}

export function useTradingDecisions(filters: DecisionFilters) {
  return useQuery({
    queryKey: ["decisions", filters],
    queryFn: () => api<Page<Decision>>("GET", "/decisions", { query: { ...filters } }),
    refetchInterval: REFRESH_MS.normal,
    placeholderData: keepPreviousData,
  });
}

export interface TradeFilters {
  ticker?: string;
  since?: string;
  until?: string;
  limit: number;
  offset: number;
}

export function useTrades(filters: TradeFilters) {
  return useQuery({
    queryKey: ["trades", filters],
    queryFn: () => api<Page<Trade>>("GET", "/trades", { query: { ...filters } }),
    refetchInterval: REFRESH_MS.normal,
    placeholderData: keepPreviousData,
  });
}

export function useTradingMetrics() {
  return useQuery({
    queryKey: ["metrics"],
    queryFn: () => api<Metrics>("GET", "/metrics"),
    refetchInterval: REFRESH_MS.normal,
  });
}

/** Every end-of-day snapshot, oldest first: the API pages by 500, so read until done. */
export function useTradingMetricsHistory() {
  return useQuery({
    queryKey: ["metrics-history"],
    queryFn: async () => (await allRows<Snapshot>("/metrics/history", {}, 50_000)).items,
    refetchInterval: REFRESH_MS.slow,
  });
}

/** The risk tier's verdicts, newest first; `verdict` narrows to changes or held closes. */
export function useTierHistory(verdict: "changed" | "held" | undefined, limit = 20) {
  return useQuery({
    queryKey: ["tier-history", verdict, limit],
    queryFn: () => api<Page<TierVerdict>>("GET", "/risk-tier/history", { query: { verdict, limit, offset: 0 } }),
    refetchInterval: REFRESH_MS.normal,
    placeholderData: keepPreviousData,
  });
}

export function useTradingConfig() {
  return useQuery({
    queryKey: ["config"],
    queryFn: () => api<Config>("GET", "/config"),
    refetchInterval: REFRESH_MS.normal,
  });
}

function useInvalidate(...keys: string[]) {
  const client = useQueryClient();
  return () => Promise.all(keys.map((key) => client.invalidateQueries({ queryKey: [key] })));
}

export function useUpdateTradingConfig() {
  const invalidate = useInvalidate("config", "status", "tier-history");
  return useMutation({
    mutationFn: (changes: Partial<Config>) => api<ConfigChange>("PUT", "/config", { body: changes }),
    onSuccess: invalidate,
  });
}

export function usePauseTradingEngine() {
  const invalidate = useInvalidate("config", "status");
  return useMutation({ mutationFn: () => api<EngineSwitch>("POST", "/pause"), onSuccess: invalidate });
}

export function useResumeTradingEngine() {
  const invalidate = useInvalidate("config", "status");
  return useMutation({ mutationFn: () => api<EngineSwitch>("POST", "/resume"), onSuccess: invalidate });
}

export function useHaltTrading() {
  const invalidate = useInvalidate("status");
  return useMutation({
    mutationFn: (reason: string) => api<BreakerChange>("POST", "/breaker/halt", { body: { reason } }),
    onSuccess: invalidate,
  });
}

export function useClearHalt() {
  const invalidate = useInvalidate("status");
  return useMutation({ mutationFn: () => api<BreakerChange>("POST", "/breaker/clear"), onSuccess: invalidate });
}

export function useReconciliation() {
  return useQuery({
    queryKey: ["reconciliation"],
    queryFn: () => api<Reconciliation>("GET", "/reconciliation"),
    refetchInterval: REFRESH_MS.normal,
  });
}

export function useAcknowledgeDiscrepancy() {
  const invalidate = useInvalidate("reconciliation", "status");
  return useMutation({
    mutationFn: (id: number) => api<Acknowledgement>("POST", `/reconciliation/${id}/acknowledge`),
    onSuccess: invalidate,
  });
}

export function useBacktestLaunch() {
  const invalidate = useInvalidate("backtests");
  return useMutation({
    mutationFn: (request: BacktestRequest) => api<BacktestAccepted>("POST", "/backtest", { body: request }),
    onSuccess: invalidate,
  });
}

export function useBacktests() {
  return useQuery({
    queryKey: ["backtests"],
    queryFn: () => api<Page<BacktestSummary>>("GET", "/backtest", { query: { limit: 20 } }),
    refetchInterval: (query) => (query.state.data?.items.some((b) => b.status === "running") ? 2_000 : REFRESH_MS.normal),
  });
}

/** Polls while the backtest runs; stops once it completed or failed, or the request failed (shown). */
export function useBacktestResult(id: string | null) {
  return useQuery({
    queryKey: ["backtest", id],
    queryFn: () => api<BacktestView>("GET", `/backtest/${id}`),
    enabled: id !== null,
    refetchInterval: (query) =>
      query.state.status !== "error" && (query.state.data?.status ?? "running") === "running" ? 1_500 : false,
  });
}

export function useOptimizationLaunch() {
  const invalidate = useInvalidate("optimizations");
  return useMutation({
    mutationFn: (request: OptimizationRequest) =>
      api<OptimizationAccepted>("POST", "/optimizations", { body: request }),
    onSuccess: invalidate,
  });
}

/** Polls every 2 s while a run is running: the list's progress is live. */
export function useOptimizations() {
  return useQuery({
    queryKey: ["optimizations"],
    queryFn: () => api<Page<OptimizationSummary>>("GET", "/optimizations", { query: { limit: 20 } }),
    refetchInterval: (query) => (query.state.data?.items.some((o) => o.status === "running") ? 2_000 : REFRESH_MS.normal),
  });
}

/** Polls while the run runs (its trials arrive as they finish); stops once it ended or the request failed. */
export function useOptimization(id: string | null) {
  return useQuery({
    queryKey: ["optimization", id],
    queryFn: () => api<OptimizationView>("GET", `/optimizations/${id}`),
    enabled: id !== null,
    refetchInterval: (query) =>
      query.state.status !== "error" && (query.state.data?.status ?? "running") === "running" ? 2_000 : false,
  });
}

/** What a search space may name and each one's allowed values; fixed for a given engine. */
export function useTunableParameters() {
  return useQuery({
    queryKey: ["optimization-parameters"],
    queryFn: async () => (await api<{ items: TunableParameter[] }>("GET", "/optimizations/parameters")).items,
    staleTime: Infinity,
  });
}

export function useNotificationConfig() {
  return useQuery({
    queryKey: ["notification-config"],
    queryFn: () => api<NotificationSettings>("GET", "/notifications/config"),
  });
}

export function useUpdateNotificationConfig() {
  const invalidate = useInvalidate("notification-config");
  return useMutation({
    mutationFn: (changes: Partial<NotificationSettings>) =>
      api<NotificationSettings>("PUT", "/notifications/config", { body: changes }),
    onSuccess: invalidate,
  });
}

export function useNotificationHistory(offset: number, limit = 25) {
  return useQuery({
    queryKey: ["notification-history", offset, limit],
    queryFn: () => api<Page<NotificationRecord>>("GET", "/notifications/history", { query: { limit, offset } }),
    refetchInterval: REFRESH_MS.normal,
    placeholderData: keepPreviousData,
  });
}
