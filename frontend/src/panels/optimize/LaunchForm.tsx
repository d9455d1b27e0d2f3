// The form that starts an optimization (POST /optimizations). It checks only what JSON cannot
// carry (a parameter named twice, or not at all); every other judgement is the API's, and a 422's reasons are
// shown beside the fields they name.
import { useState } from "react";
import { ApiError } from "../../api/client";
import { useOptimizationLaunch, useTunableParameters } from "../../api/hooks";
import { OBJECTIVES, SAMPLERS, type ObjectiveName, type OptimizationRequest, type SamplerName, type SignalSource } from "../../api/types";
import { BacktestFields, backtestRequestFields, useBacktestFields } from "../../components/BacktestFields";
import { FieldNote } from "../../components/fieldErrors";
import { ErrorBox } from "../../components/ui";
import { label } from "../../format";
import { defaultSpace, rowProblem, SpaceEditor, spaceSpec, type SpaceRow } from "./SpaceEditor";

const SIGNAL_OPTIONS: [SignalSource, string][] = [
  ["momentum", "momentum (windows tunable)"],
  ["database", "recommendations"],
];

// The request's fields this form has an input for: a refusal of any of them is shown there.
const FORM_FIELDS = ["start_date", "end_date", "initial_capital", "risk_tier", "signals", "tickers", "space", "objective", "sampler", "trials", "seed", "min_trades", "max_drawdown", "walk_forward"];

/** A count as JSON wants it (a number); a fraction or a word goes as it is read (NaN as null),
 * and the API says why it is not a whole number. */
function whole(text: string): number {
  return Number(text.trim());
}

export function LaunchForm({ onLaunched }: { onLaunched: (id: string) => void }) {
  const launch = useOptimizationLaunch();
  const tunables = useTunableParameters();
  const [fields, setFields] = useBacktestFields({ start: "2004-01-02", end: "2005-12-30", signals: "momentum" });
  const [objective, setObjective] = useState<ObjectiveName>("sharpe");
  const [sampler, setSampler] = useState<SamplerName>("tpe");
  const [trials, setTrials] = useState("20");
  const [seed, setSeed] = useState("0");
  const [minTrades, setMinTrades] = useState("0");
  const [maxDrawdown, setMaxDrawdown] = useState("");
  const [space, setSpace] = useState<SpaceRow[]>(defaultSpace);
  const [walkForward, setWalkForward] = useState(false);
  const [anchored, setAnchored] = useState(false);
  const [train, setTrain] = useState("252");
  const [test, setTest] = useState("63");
  const [step, setStep] = useState("");
  const error = launch.error;
  const blocked = space.some((row) => rowProblem(space, row) !== null);

  const request = (): OptimizationRequest => ({
    ...backtestRequestFields(fields),
    space: Object.fromEntries(space.map((row) => [row.name.trim(), spaceSpec(row)])),
    objective,
    sampler,
    trials: whole(trials),
    seed: whole(seed || "0"),
    min_trades: whole(minTrades || "0"),
    // The form takes a percentage; the API a fraction.
    max_drawdown: maxDrawdown.trim() ? String(Number(maxDrawdown) / 100) : null,
    walk_forward: walkForward ? { train: whole(train), test: whole(test), step: step.trim() ? whole(step) : null, anchored } : null,
  });

  return (
    <form
      className="grid grid-cols-2 gap-3 text-xs text-slate-300"
      onSubmit={(e) => {
        e.preventDefault();
        if (!blocked) launch.mutate(request(), { onSuccess: (r) => onLaunched(r.optimization_id) });
      }}
    >
      <BacktestFields value={fields} onChange={setFields} signalOptions={SIGNAL_OPTIONS} error={error} />
      <label>
        Objective
        <select className="input mt-1 block w-full" value={objective} onChange={(e) => setObjective(e.target.value as ObjectiveName)}>
          {OBJECTIVES.map((o) => (
            <option key={o} value={o}>{label(o)}</option>
          ))}
        </select>
        <FieldNote error={error} field="objective" />
      </label>
      <label>
        Sampler
        <select className="input mt-1 block w-full" value={sampler} onChange={(e) => setSampler(e.target.value as SamplerName)}>
          {SAMPLERS.map((s) => (
            <option key={s} value={s}>{s === "grid" ? "grid (ranges need a step)" : s}</option>
          ))}
        </select>
        <FieldNote error={error} field="sampler" />
      </label>
      <label>
        {walkForward ? "Trials per window" : "Trials"}
        <input type="number" min="1" step="1" required className="input mt-1 block w-full" value={trials} onChange={(e) => setTrials(e.target.value)} />
        <FieldNote error={error} field="trials" />
      </label>
      <label>
        Seed
        <input type="number" min="0" step="1" className="input mt-1 block w-full" value={seed} onChange={(e) => setSeed(e.target.value)} />
        <FieldNote error={error} field="seed" />
      </label>
      <label>
        Min. closed trades
        <input type="number" min="0" step="1" className="input mt-1 block w-full" value={minTrades} onChange={(e) => setMinTrades(e.target.value)} />
        <FieldNote error={error} field="min_trades" />
      </label>
      <label>
        Max. drawdown (%)
        <input type="number" min="0" max="100" step="any" className="input mt-1 block w-full placeholder:text-slate-600" placeholder="no limit" value={maxDrawdown} onChange={(e) => setMaxDrawdown(e.target.value)} />
        <FieldNote error={error} field="max_drawdown" />
      </label>
      <fieldset className="col-span-2">
        <legend className="mb-1">Search space</legend>
        <SpaceEditor rows={space} onChange={setSpace} tunables={tunables.data ?? []} error={error} />
        {tunables.isError && <ErrorBox error={tunables.error} what="the tunable parameters" />}
      </fieldset>
      <fieldset className="col-span-2 grid grid-cols-4 gap-2 rounded-md border border-slate-800 p-2">
        <label className="col-span-4 flex items-center gap-2">
          <input type="checkbox" checked={walkForward} onChange={(e) => setWalkForward(e.target.checked)} />
          Walk-forward: search each train period, then trade its winner on the unseen test period after it
        </label>
        {walkForward && (
          <>
            <label>
              Windows
              <select aria-label="Windows" className="input mt-1 block w-full" value={anchored ? "anchored" : "rolling"} onChange={(e) => setAnchored(e.target.value === "anchored")}>
                <option value="rolling">rolling</option>
                <option value="anchored">anchored</option>
              </select>
            </label>
            <label>
              Train (sessions)
              <input type="number" min="20" step="1" required className="input mt-1 block w-full" value={train} onChange={(e) => setTrain(e.target.value)} />
            </label>
            <label>
              Test (sessions)
              <input type="number" min="1" step="1" required className="input mt-1 block w-full" value={test} onChange={(e) => setTest(e.target.value)} />
            </label>
            <label>
              Step (sessions)
              <input type="number" min="1" step="1" className="input mt-1 block w-full placeholder:text-slate-600" placeholder="= test" value={step} onChange={(e) => setStep(e.target.value)} />
            </label>
            <div className="col-span-4">
              <FieldNote error={error} field="walk_forward" />
            </div>
          </>
        )}
      </fieldset>
      <div className="col-span-2 flex items-center gap-3">
        <button className="btn-primary whitespace-nowrap" type="submit" disabled={launch.isPending || blocked}>
          {launch.isPending ? "Starting…" : "Run optimization"}
        </button>
        <span className="text-slate-500">Needs the API token. One run at a time.</span>
      </div>
      {error && (
        <div className="col-span-2">
          <LaunchError error={error} />
        </div>
      )}
    </form>
  );
}

/** A refusal whose every field is shown beside its input needs only a pointer; anything else in full. */
function LaunchError({ error }: { error: Error }) {
  const placed = error instanceof ApiError && error.fields.length > 0 && error.fields.every((f) => FORM_FIELDS.includes(f.field.split(".")[0]));
  if (placed) {
    return (
      <p role="alert" data-testid="launch-refused" className="text-rose-300">
        Not started: the API refused {error.fields.length === 1 ? "a field" : `${error.fields.length} fields`}; the reasons are beside them.
      </p>
    );
  }
  return <ErrorBox error={error} what="the optimization (not started)" />;
}
