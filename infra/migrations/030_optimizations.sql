-- Parameter search and walk-forward analysis (issue 16). A run is written as it goes: each
-- trial as it finishes (with its daily returns, enough to recompute DSR and PBO on resume),
-- each walk-forward window when its out-of-sample run is done, the run's summary at the end.
CREATE TABLE optimization_runs (
    id            uuid        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('search', 'walk_forward')),
    config        jsonb       NOT NULL,
    status        text        NOT NULL DEFAULT 'running'
                              CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    progress      double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    objective     text        NOT NULL,
    trials_planned integer    NOT NULL CHECK (trials_planned >= 0),
    trials_done   integer     NOT NULL DEFAULT 0 CHECK (trials_done >= 0),
    -- The best feasible trial of a search (window_index NULL); a walk-forward's are per window.
    best_trial    integer,
    best_value    double precision,
    best_params   jsonb,
    dsr           jsonb,
    pbo           jsonb,
    importance    jsonb,
    -- Walk-forward: stitched out-of-sample equity and metrics beside the in-sample ones,
    -- degradation and parameter stability. Search: the best trial's equity.
    summary       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
CREATE INDEX optimization_runs_created ON optimization_runs (created_at DESC);

CREATE TABLE optimization_trials (
    run_id        uuid        NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
    window_index  integer,    -- NULL in a search; the walk-forward window otherwise
    number        integer     NOT NULL CHECK (number >= 0),
    params        jsonb       NOT NULL,
    state         text        NOT NULL CHECK (state IN ('complete', 'infeasible', 'failed')),
    value         double precision,  -- the objective (infinite allowed); NULL when not run
    reason        text,       -- why infeasible, or the error of a failed trial
    metrics       jsonb,
    daily_returns float8[]    NOT NULL DEFAULT '{}',
    node_id       text,       -- the Ray node that ran it
    seconds       double precision,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (run_id, window_index, number)
);

CREATE TABLE optimization_windows (
    run_id            uuid    NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
    window_index      integer NOT NULL CHECK (window_index >= 0),
    train_start       date    NOT NULL,
    train_end         date    NOT NULL,
    test_start        date    NOT NULL,
    test_end          date    NOT NULL,
    best_trial        integer,
    best_params       jsonb,
    in_sample         jsonb,  -- the best trial's metrics on the train period
    out_of_sample     jsonb,  -- the same parameters' metrics on the test period
    degradation       double precision,
    in_sample_equity  jsonb   NOT NULL DEFAULT '[]'::jsonb,
    oos_equity        jsonb   NOT NULL DEFAULT '[]'::jsonb,
    dsr               jsonb,
    pbo               jsonb,
    importance        jsonb,
    error             text,   -- no feasible trial, or the test run failed
    completed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, window_index),
    CHECK (train_start <= train_end AND train_end < test_start AND test_start <= test_end)
);
