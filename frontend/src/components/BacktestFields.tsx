// The fields every backtest is described by (period, capital, risk tier, signals, tickers), as the
// Backtest page and the Optimize page both ask for them. Each page wraps them in its own form.
import { useState } from "react";
import { TIERS, type BacktestRequest, type SignalSource, type Tier } from "../api/types";
import { FieldNote } from "./fieldErrors";

export interface BacktestFieldValues {
  start: string;
  end: string;
  capital: string;
  tier: Tier;
  signals: SignalSource;
  tickers: string;
}

export const BACKTEST_FIELD_DEFAULTS: BacktestFieldValues = {
  start: "2008-01-02",
  end: "2009-12-31",
  capital: "10000",
  tier: "moderate",
  signals: "database",
  tickers: "",
};

/** The fields' values, starting from the defaults with `overrides` on top. */
export function useBacktestFields(overrides: Partial<BacktestFieldValues> = {}) {
  return useState<BacktestFieldValues>(() => ({ ...BACKTEST_FIELD_DEFAULTS, ...overrides }));
}

/** The request's part these fields fill in. */
export function backtestRequestFields(v: BacktestFieldValues): Required<BacktestRequest> {
  return {
    start_date: v.start,
    end_date: v.end,
    initial_capital: v.capital.trim(),
    risk_tier: v.tier,
    tickers: v.tickers.split(/[\s,]+/).map((t) => t.trim().toUpperCase()).filter(Boolean),
    signals: v.signals,
  };
}

/** The inputs, one `<label>` each, for a two-column form grid. `signalOptions` lists the signal
 * sources in the order shown, with their labels; an `error` (a 422) is shown beside the fields it names. */
export function BacktestFields(props: {
  value: BacktestFieldValues;
  onChange: (value: BacktestFieldValues) => void;
  signalOptions: [SignalSource, string][];
  error?: unknown;
}) {
  const { value, onChange, error } = props;
  const set = <K extends keyof BacktestFieldValues>(key: K, v: BacktestFieldValues[K]) => onChange({ ...value, [key]: v });
  return (
    <>
      <label>
        Start
        <input type="date" required className="input mt-1 block w-full" value={value.start} onChange={(e) => set("start", e.target.value)} />
        <FieldNote error={error} field="start_date" />
      </label>
      <label>
        End
        <input type="date" required className="input mt-1 block w-full" value={value.end} onChange={(e) => set("end", e.target.value)} />
        <FieldNote error={error} field="end_date" />
      </label>
      <label>
        Initial capital ($)
        <input type="number" min="1" step="any" required className="input mt-1 block w-full" value={value.capital} onChange={(e) => set("capital", e.target.value)} />
        <FieldNote error={error} field="initial_capital" />
      </label>
      <label>
        Risk tier
        <select className="input mt-1 block w-full capitalize" value={value.tier} onChange={(e) => set("tier", e.target.value as Tier)}>
          {TIERS.map((t) => (
            <option key={t} value={t}>{t}</option>
          ))}
        </select>
        <FieldNote error={error} field="risk_tier" />
      </label>
      <label>
        Signals
        <select className="input mt-1 block w-full" value={value.signals} onChange={(e) => set("signals", e.target.value as SignalSource)}>
          {props.signalOptions.map(([source, text]) => (
            <option key={source} value={source}>{text}</option>
          ))}
        </select>
        <FieldNote error={error} field="signals" />
      </label>
      <label>
        Tickers
        <input className="input mt-1 block w-full uppercase placeholder:normal-case" placeholder="all with bars" value={value.tickers} onChange={(e) => set("tickers", e.target.value)} />
        <FieldNote error={error} field="tickers" />
      </label>
    </>
  );
}
