// Response shapes of the engine's API (services/trading/api/models.py and friends).
// Money, prices and quantities arrive as decimal strings; statistics as numbers or null.

export type Dec = string;
export type Tier = "conservative" | "moderate" | "aggressive";
export const TIERS: Tier[] = ["conservative", "moderate", "aggressive"];
/** Where a backtest's recommendations come from: the stored ones, or the sample momentum signal. */
export type SignalSource = "database" | "momentum";

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface CircuitBreaker {
  active: boolean;
  trigger: string | null;
  reason: string | null;
  triggered_at: string | null;
  until: string | null;
  ticker_cooldowns: { ticker: string; until: string }[];
}

/** POST /breaker/halt and /breaker/clear: the owner's manual halt. */
// Reconciliation with the broker (issue 14): GET /reconciliation, POST /reconciliation/{id}/acknowledge.
export interface ReconciliationRun {
  id: number;
  trigger: string;
  started_at: string;
  finished_at: string | null;
  status: "agreed" | "differences" | "failed" | string;
  error: string | null;
  found: number;
  positions_compared: number;
  orders_compared: number;
  engine_cash: string | null;
  broker_cash: string | null;
}

export interface Discrepancy {
  id: number;
  run_id: number;
  kind: string;
  ticker: string | null;
  client_order_id: string | null;
  engine_figure: string;
  broker_figure: string;
  resolution: string;
  rule: string;
  correction_order_id: string | null;
  pauses: boolean;
  created_at: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
}

export interface Reconciliation {
  paused: boolean;
  account: { cash: string; buying_power: string | null; equity: string | null; updated_at: string } | null;
  runs: ReconciliationRun[];
  open: Discrepancy[];
}

export interface Acknowledgement {
  changed: boolean;
  paused: boolean;
  discrepancy: Discrepancy;
}

export interface BreakerChange {
  changed: boolean;
  circuit_breaker: CircuitBreaker;
}

export interface Position {
  ticker: string;
  sector: string;
  quantity: Dec;
  entry_price: Dec;
  current_price: Dec;
  price_as_of: string | null;
  market_value: Dec;
  cost_basis: Dec;
  unrealized_pnl: Dec;
  unrealized_pnl_pct: Dec;
  stop_loss_price: Dec | null;
  take_profit_price: Dec | null;
  trailing_stop_active: boolean;
  atr_value: Dec | null;
  risk_dollars: Dec;
  signal_confidence: Dec | null;
  is_micro_trade: boolean;
  opened_at: string | null;
}

export interface EngineView {
  attached: boolean;
  runs_here: boolean;
  started: boolean;
  holds_lock: boolean;
  loop_running: boolean;
  mode: string | null;
  error: string | null;
}

export interface Status {
  as_of: string;
  enabled: boolean;
  paused: boolean;
  risk_tier: Tier;
  circuit_breaker: CircuitBreaker;
  total_value: Dec;
  cash: Dec;
  active_pool: Dec;
  reserve_pool: Dec;
  portfolio_heat: Dec;
  max_portfolio_heat: Dec;
  open_position_count: number;
  open_positions: Position[];
  last_decision_at: string | null;
  micro_entries_today: number;
  engine: EngineView;
  trading_mode: "paper" | "live";
  broker: "paper" | "alpaca";
}

export interface Positions {
  as_of: string;
  total_value: Dec;
  items: Position[];
  sector_exposure: Record<string, Dec>;
}

export interface Decision {
  id: string;
  recommendation_id: number | null;
  ticker: string;
  decision: "act" | "skip";
  side: "buy" | "sell";
  skip_reason: string | null;
  category: string;
  computed_position_size: Dec;
  computed_share_quantity: Dec;
  risk_tier_at_decision: string;
  portfolio_heat_at_decision: Dec;
  active_pool_at_decision: Dec;
  reserve_pool_at_decision: Dec;
  circuit_breaker_status: string;
  earnings_proximity_flag: boolean;
  is_micro_trade: boolean;
  correlation_check_result: Record<string, unknown>;
  sector_exposure_check_result: Record<string, unknown>;
  decision_trace: Record<string, unknown>;
  created_at: string;
}

export interface Trade {
  id: number;
  ticker: string;
  quantity: Dec;
  entry_price: Dec;
  exit_price: Dec;
  fees: Dec;
  pnl: Dec;
  pnl_pct: Dec;
  entry_at: string;
  exit_at: string;
  hold_duration_seconds: number;
  exit_reason: string;
  is_micro_trade: boolean;
  recommendation_id: number | null;
  trading_decision_id: string | null;
  thesis: string | null;
}

export interface TradeStats {
  trade_count: number;
  win_count: number;
  loss_count: number;
  win_rate: number | null;
  avg_win: Dec;
  avg_loss: Dec;
  profit_factor: number | null;
  profit_factor_infinite: boolean;
  realized_pnl: Dec;
  unrealized_pnl: Dec;
}

export interface Metrics {
  as_of: string;
  total_portfolio_value: Dec;
  active_pool: Dec;
  reserve_pool: Dec;
  unrealized_pnl: Dec;
  realized_pnl: Dec;
  daily_pnl: Dec;
  trade_count: number;
  win_count: number;
  loss_count: number;
  win_rate: number | null;
  avg_win: Dec;
  avg_loss: Dec;
  profit_factor: number | null;
  profit_factor_infinite: boolean;
  sharpe_ratio: number | null;
  max_drawdown: number | null;
  current_drawdown: number | null;
  portfolio_heat: Dec;
  micro: TradeStats;
  history_days: number;
}

export interface Snapshot {
  snapshot_date: string;
  portfolio_value: Dec;
  active_pool: Dec;
  reserve_pool: Dec;
  daily_return: number | null;
  cumulative_return: number | null;
  unrealized_pnl: Dec;
  realized_pnl: Dec;
  daily_pnl: Dec | null;
  win_count: number;
  loss_count: number;
  win_rate: number | null;
  trade_count: number | null;
  profit_factor: number | null;
  profit_factor_infinite: boolean;
  sharpe_ratio: number | null;
  max_drawdown: number | null;
  current_drawdown: number | null;
  portfolio_heat: Dec;
  risk_tier: string;
}

export interface Config {
  enabled: boolean;
  paused: boolean;
  risk_tier: Tier;
  tiers: Record<string, Record<string, Dec>>;
  micro_trading_enabled: boolean;
  micro_trading_interval_seconds: Dec;
  micro_trading_allocation_cap_pct: Dec;
  micro_trading_max_daily: number;
  micro_trading_max_hold_minutes: number;
  risk_tier_rule: "guarded" | "plan";
  risk_tier_min_trades: number;
  risk_tier_min_sessions: number;
  risk_tier_recovery_sessions: number;
  updated_at: string;
  [field: string]: unknown;
}

/** One verdict of the risk tier: a change (autopilot or owner) or a close that held it. */
export interface TierVerdict {
  id: number;
  created_at: string;
  verdict: "changed" | "held";
  previous_tier: string;
  new_tier: string;
  trigger_source: string;
  reason: string;
  figures: Record<string, unknown>;
}

export interface ConfigChange {
  changed: string[];
  config: Config;
}

export interface EngineSwitch {
  enabled: boolean;
  paused: boolean;
  changed: boolean;
}

export interface BacktestRequest {
  start_date: string;
  end_date: string;
  initial_capital: string;
  risk_tier: Tier;
  tickers?: string[];
  signals?: SignalSource;
}

export interface BacktestAccepted {
  backtest_id: string;
  status: "running";
  result_url: string;
}

export interface BacktestSummary {
  id: string;
  status: "running" | "completed" | "failed";
  progress: number;
  error_message: string | null;
  start_date: string;
  end_date: string;
  initial_capital: Dec;
  risk_tier: string;
  final_value: Dec | null;
  total_return: number | null;
  sharpe_ratio: number | null;
  max_drawdown: number | null;
  win_rate: number | null;
  profit_factor: number | null;
  profit_factor_infinite: boolean;
  trade_count: number | null;
  created_at: string;
  completed_at: string | null;
}

export interface BacktestTrade {
  ticker: string;
  side: string;
  quantity: Dec;
  entry_price: Dec;
  exit_price: Dec | null;
  pnl: Dec | null;
  fees: Dec;
  entry_date: string;
  exit_date: string | null;
  hold_duration_days: number | null;
  exit_reason: string | null;
  recommendation_id: number | null;
}

export interface BacktestView extends BacktestSummary {
  config: Record<string, unknown>;
  equity_curve: { date: string; value: Dec }[];
  data_gaps: Record<string, unknown>[];
  details: Record<string, unknown>;
  trades: BacktestTrade[];
}

export const EVENT_TYPES = [
  "circuit_breaker_triggered",
  "circuit_breaker_resumed",
  "risk_tier_changed",
  "emergency_liquidation",
  "large_trade_pnl",
  "daily_summary",
  "weekly_digest",
  "order_rejected",
  "reconciliation_discrepancy",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface NotificationSettings {
  sms_enabled: boolean;
  email_enabled: boolean;
  webhook_enabled: boolean;
  telegram_enabled: boolean;
  sms_rate_limit_per_hour: number;
  email_rate_limit_per_hour: number;
  webhook_rate_limit_per_hour: number;
  telegram_rate_limit_per_hour: number;
  notification_event_types: EventType[];
  large_trade_pnl_threshold: Dec | number;
  daily_summary_time: string;
  weekly_digest_weekday: number;
  weekly_digest_time: string;
  sms_phone_number: string | null;
  sns_topic_arn: string | null;
  email_sender: string | null;
  email_recipients: string[];
}

export interface NotificationRecord {
  id: number;
  channel: string;
  event_type: string;
  message: string;
  delivery_status: string;
  retry_count: number;
  error_message: string | null;
  created_at: string;
  delivered_at: string | null;
}

// Parameter optimization (issue 16): services/trading/api/optimization_models.py.
export const OBJECTIVES = ["sharpe", "sortino", "calmar", "total_return", "profit_factor"] as const;
export type ObjectiveName = (typeof OBJECTIVES)[number];
export const SAMPLERS = ["tpe", "random", "grid"] as const;
export type SamplerName = (typeof SAMPLERS)[number];
export type OptimizationStatus = "running" | "completed" | "failed" | "interrupted";

/** A parameter's values: a range (stepped, or on a log scale) or a list of choices. Numbers as
 * decimal strings, as typed. */
export type SpaceSpec = { low: string; high: string; step?: string; log?: boolean } | { choices: string[] };

export interface OptimizationRequest {
  start_date: string;
  end_date: string;
  initial_capital: string;
  risk_tier: Tier;
  tickers: string[];
  signals: SignalSource;
  space: Record<string, SpaceSpec>;
  objective: ObjectiveName;
  min_trades: number;
  max_drawdown: string | null;
  sampler: SamplerName;
  seed: number;
  trials: number;
  walk_forward: { train: number; test: number; step: number | null; anchored: boolean } | null;
}

export interface OptimizationAccepted {
  optimization_id: string;
  status: "running";
  result_url: string;
}

export interface TunableParameter {
  name: string;
  scope: "tier" | "engine";
  kind: "int" | "float";
  low: number;
  high: number;
  low_open: boolean;
  bounds: string;
  description: string;
}

/** The Deflated Sharpe Ratio of the best trial (per-period Sharpe ratios), or why there is none. */
export interface DeflatedSharpe {
  error?: string;
  dsr?: number | null;
  best_trial?: number;
  observed_sharpe?: number | null;
  expected_max_sharpe?: number | null;
  sharpe_variance?: number | null;
  trials?: number;
  observations?: number;
  skewness?: number | null;
  kurtosis?: number | null;
}

/** The Probability of Backtest Overfitting by CSCV, or why there is none. */
export interface BacktestOverfitting {
  error?: string;
  pbo?: number | null;
  combinations?: number;
  degradation_slope?: number | null;
  probability_of_loss?: number | null;
  splits?: number;
  logit_histogram?: { edges: number[]; counts: number[] };
}

/** A run's stored configuration (OptimizationConfig.to_json). */
export interface OptimizationConfig {
  kind: "search" | "walk_forward";
  backtest: { start_date: string; end_date: string; initial_capital: Dec; risk_tier: Tier; tickers: string[]; signals: string };
  space: Record<string, { low?: number; high?: number; step?: number; log?: boolean; choices?: number[] }>;
  objective: ObjectiveName;
  constraints: { min_trades: number; max_drawdown: number | null };
  sampler: SamplerName;
  seed: number;
  trials: number;
  walk_forward: { train: number; test: number; step: number | null; anchored: boolean } | null;
  parallelism: number | null;
}

export interface OptimizationSummary {
  id: string;
  kind: "search" | "walk_forward";
  status: OptimizationStatus;
  progress: number;
  objective: ObjectiveName;
  trials_planned: number;
  trials_done: number;
  best_trial: number | null;
  best_value: number | null;
  best_params: Record<string, number> | null;
  dsr: DeflatedSharpe | null;
  pbo: BacktestOverfitting | null;
  error: string | null;
  config: OptimizationConfig;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}

/** A trial's figures (TrialMetrics.to_json): a non-finite one is null with `<name>_infinite`. */
export interface TrialMetrics {
  total_return: number | null;
  sharpe: number | null;
  sortino: number | null;
  calmar: number | null;
  max_drawdown: number | null;
  profit_factor: number | null;
  win_rate: number | null;
  trade_count: number;
  final_value: Dec;
  [infinite: `${string}_infinite`]: boolean | undefined;
}

export interface OptimizationTrial {
  window_index: number | null;
  number: number;
  params: Record<string, number>;
  state: "complete" | "infeasible" | "failed";
  value: number | null;
  value_infinite: boolean;
  reason: string | null;
  metrics: TrialMetrics | null;
  node_id: string | null;
  seconds: number | null;
  sessions: number;
  finished_at: string;
}

export interface EquityPoint {
  date: string;
  value: Dec;
}

export interface WalkForwardWindow {
  window_index: number;
  train_start: string;
  train_end: string;
  test_start: string;
  test_end: string;
  best_trial: number | null;
  best_params: Record<string, number> | null;
  in_sample: TrialMetrics | null;
  out_of_sample: TrialMetrics | null;
  degradation: number | null;
  in_sample_equity: EquityPoint[];
  oos_equity: EquityPoint[];
  dsr: DeflatedSharpe | null;
  pbo: BacktestOverfitting | null;
  importance: Record<string, number> | null;
  error: string | null;
}

/** How steady one parameter's chosen value was across the windows (walk_forward.ParameterStability). */
export interface ParameterStability {
  name: string;
  values: number[];
  distinct: number;
  modal_value: number;
  modal_share: number;
  coefficient_of_variation: number | null;
}

/** A walk-forward run's summary; a search's is empty (its equity is `best_equity`). */
export interface WalkForwardSummary {
  windows?: number;
  windows_tested?: number;
  objective?: ObjectiveName;
  out_of_sample_metrics?: {
    total_return: number | null;
    sharpe: number | null;
    sortino: number | null;
    calmar: number | null;
    max_drawdown: number | null;
    sessions: number;
  };
  stitch_error?: string;
  in_sample_mean?: number | null;
  out_of_sample_mean?: number | null;
  degradation?: number | null;
  stability?: ParameterStability[];
}

export interface OptimizationView extends OptimizationSummary {
  importance: Record<string, number> | null;
  summary: WalkForwardSummary;
  best_equity: EquityPoint[];
  oos_equity: EquityPoint[];
  trials: OptimizationTrial[];
  windows: WalkForwardWindow[];
}
