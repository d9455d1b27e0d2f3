// TanStack Query hooks for every trading endpoint (seed task 23.1). Reads refresh on their
// own; a change invalidates what it affects, so the panels show the engine's word, not ours.
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "./client";
import type {
  BacktestAccepted,
  BacktestRequest,
  BacktestSummary,
  BacktestView,
  Config,
  ConfigChange,
  Decision,
  EngineSwitch,
  Metrics,
  NotificationRecord,
  NotificationSettings,
  Page,
  Positions,
  Snapshot,
  Status,
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
    queryFn: async () => {
      const items: Snapshot[] = [];
      for (let offset = 0; ; offset += 500) {
        const page = await api<Page<Snapshot>>("GET", "/metrics/history", { query: { limit: 500, offset } });
        items.push(...page.items);
        if (page.items.length === 0 || items.length >= page.total || offset > 50_000) break;
      }
      return items;
    },
    refetchInterval: REFRESH_MS.slow,
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
  const invalidate = useInvalidate("config", "status");
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

/** Polls while the backtest runs; stops once it completed or failed. */
export function useBacktestResult(id: string | null) {
  return useQuery({
    queryKey: ["backtest", id],
    queryFn: () => api<BacktestView>("GET", `/backtest/${id}`),
    enabled: id !== null,
    refetchInterval: (query) => (query.state.data?.status === "running" || !query.state.data ? 1_500 : false),
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
