"""The optimizer's PostgreSQL side (issue 16): runs, trials and walk-forward windows, written as
they happen, read back to resume a run or to show it.

All SQL of the optimizer lives here. A run in progress is held by the process running it
through a session advisory lock on its id (`claim_run`): a run marked `running` whose lock
nobody holds was left by a process that died, and is marked `interrupted` (`mark_orphaned_runs`,
at the start of `stonks optimize` and of the API). Resuming takes the lock first, so two
processes never run the same run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import numpy as np

from services.trading.optimize.objective import TrialMetrics
from services.trading.optimize.trial import TrialOutcome

Connection = asyncpg.Connection | asyncpg.Pool
_LOCK_KEY = "hashtextextended('optimization_run:' || $1::uuid::text, 0)"


def json_safe(value: Any) -> Any:
    """Plain JSON of a result value: dataclasses and numpy as lists and numbers, non-finite
    numbers as null (PostgreSQL's jsonb has no infinity)."""
    if is_dataclass(value) and not isinstance(value, type):
        return json_safe(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (Decimal, date)):
        return str(value)
    return value


def equity_json(curve: Sequence[tuple[date, Decimal]]) -> list[dict[str, str]]:
    return [{"date": d.isoformat(), "value": str(round(v, 2))} for d, v in curve]


# -- runs ------------------------------------------------------------------------------------


async def create_run(
    connection: Connection, run_id: UUID, kind: str, config: Mapping[str, Any], objective: str, planned: int
) -> None:
    await connection.execute(
        """INSERT INTO optimization_runs (id, kind, config, objective, trials_planned)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING""",
        run_id,
        kind,
        dict(config),
        objective,
        planned,
    )


async def update_config(connection: Connection, run_id: UUID, config: Mapping[str, Any]) -> None:
    await connection.execute(
        "UPDATE optimization_runs SET config = $2, updated_at = now() WHERE id = $1", run_id, dict(config)
    )


async def claim_run(connection: asyncpg.Connection, run_id: UUID) -> bool:
    """Take the run's lock for this connection's session; False when another process holds it."""
    return await connection.fetchval(f"SELECT pg_try_advisory_lock({_LOCK_KEY})", run_id)


async def release_run(connection: asyncpg.Connection, run_id: UUID) -> None:
    await connection.execute(f"SELECT pg_advisory_unlock({_LOCK_KEY})", run_id)


async def start_run(connection: Connection, run_id: UUID) -> None:
    """Mark a run (new or resumed) running again."""
    await connection.execute(
        """UPDATE optimization_runs SET status = 'running', error = NULL, completed_at = NULL,
               updated_at = now() WHERE id = $1""",
        run_id,
    )


async def set_planned(connection: Connection, run_id: UUID, planned: int) -> None:
    await connection.execute(
        "UPDATE optimization_runs SET trials_planned = $2, updated_at = now() WHERE id = $1", run_id, planned
    )


async def set_progress(connection: Connection, run_id: UUID, done: int, progress: float) -> None:
    await connection.execute(
        """UPDATE optimization_runs SET trials_done = $2, progress = $3, updated_at = now()
           WHERE id = $1""",
        run_id,
        done,
        min(max(progress, 0.0), 1.0),
    )


async def finish_run(connection: Connection, run_id: UUID, **fields: Any) -> None:
    """Close a run `completed` with its results (best_trial, best_value, best_params, dsr, pbo,
    importance, summary)."""
    await connection.execute(
        """UPDATE optimization_runs SET status = 'completed', progress = 1, best_trial = $2,
               best_value = $3, best_params = $4, dsr = $5, pbo = $6, importance = $7, summary = $8,
               error = NULL, completed_at = now(), updated_at = now()
           WHERE id = $1""",
        run_id,
        fields.get("best_trial"),
        fields.get("best_value"),
        json_safe(fields.get("best_params")),
        json_safe(fields.get("dsr")),
        json_safe(fields.get("pbo")),
        json_safe(fields.get("importance")),
        json_safe(fields.get("summary") or {}),
    )


async def stop_run(connection: Connection, run_id: UUID, status: str, error: str) -> None:
    """Close a run `failed` or `interrupted`, with why; a completed run is left alone."""
    await connection.execute(
        """UPDATE optimization_runs SET status = $2, error = $3, completed_at = now(), updated_at = now()
           WHERE id = $1 AND status = 'running'""",
        run_id,
        status,
        error,
    )


async def mark_orphaned_runs(connection: Connection) -> list[UUID]:
    """Runs left `running` by a process that is gone (nobody holds their lock) become
    `interrupted`; they resume with `stonks optimize --resume ID`."""
    marked = []
    for row in await connection.fetch("SELECT id FROM optimization_runs WHERE status = 'running'"):
        if isinstance(connection, asyncpg.Pool):
            async with connection.acquire() as conn:
                done = await _mark_if_orphaned(conn, row["id"])
        else:
            done = await _mark_if_orphaned(connection, row["id"])
        if done:
            marked.append(row["id"])
    return marked


async def _mark_if_orphaned(connection: asyncpg.Connection, run_id: UUID) -> bool:
    async with connection.transaction():
        # A transaction-level try-lock conflicts with the runner's session lock and is released
        # at commit: it only asks whether the run's process is still there.
        if not await connection.fetchval(f"SELECT pg_try_advisory_xact_lock({_LOCK_KEY})", run_id):
            return False
        status = await connection.execute(
            """UPDATE optimization_runs SET status = 'interrupted', completed_at = now(), updated_at = now(),
                   error = 'the process running it stopped before it finished; resume it with '
                           || 'stonks optimize --resume ' || id::text
               WHERE id = $1 AND status = 'running'""",
            run_id,
        )
    return status.endswith(" 1")


# -- trials and windows ----------------------------------------------------------------------


async def save_trial(connection: Connection, run_id: UUID, outcome: TrialOutcome) -> None:
    await connection.execute(
        """INSERT INTO optimization_trials (run_id, window_index, number, params, state, value, reason,
               metrics, daily_returns, node_id, seconds)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (run_id, window_index, number) DO UPDATE SET params = EXCLUDED.params,
               state = EXCLUDED.state, value = EXCLUDED.value, reason = EXCLUDED.reason,
               metrics = EXCLUDED.metrics, daily_returns = EXCLUDED.daily_returns,
               node_id = EXCLUDED.node_id, seconds = EXCLUDED.seconds, finished_at = now()""",
        run_id,
        outcome.window_index,
        outcome.number,
        json_safe(outcome.params),
        outcome.state,
        outcome.value,
        outcome.reason,
        None if outcome.metrics is None else outcome.metrics.to_json(),
        outcome.returns.tolist(),
        outcome.node_id,
        outcome.seconds,
    )


def _outcome(row: Mapping[str, Any]) -> TrialOutcome:
    metrics = row["metrics"]
    return TrialOutcome(
        number=row["number"],
        window_index=row["window_index"],
        params=row["params"],
        state=row["state"],
        value=row["value"],
        reason=row["reason"],
        metrics=None if metrics is None else TrialMetrics.from_json(metrics),
        returns=np.asarray(row["daily_returns"], dtype=np.float64),
        node_id=row["node_id"],
        seconds=row["seconds"] or 0.0,
    )


async def load_trials(connection: Connection, run_id: UUID) -> dict[tuple[int | None, int], TrialOutcome]:
    """Every stored trial of a run by (window index, number)."""
    rows = await connection.fetch(
        "SELECT * FROM optimization_trials WHERE run_id = $1 ORDER BY window_index NULLS FIRST, number",
        run_id,
    )
    return {(r["window_index"], r["number"]): _outcome(r) for r in rows}


async def save_window(connection: Connection, run_id: UUID, window: Mapping[str, Any]) -> None:
    await connection.execute(
        """INSERT INTO optimization_windows (run_id, window_index, train_start, train_end, test_start, test_end,
               best_trial, best_params, in_sample, out_of_sample, degradation, in_sample_equity, oos_equity,
               dsr, pbo, importance, error)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
           ON CONFLICT (run_id, window_index) DO NOTHING""",
        run_id,
        window["window_index"],
        window["train_start"],
        window["train_end"],
        window["test_start"],
        window["test_end"],
        window.get("best_trial"),
        json_safe(window.get("best_params")),
        json_safe(window.get("in_sample")),
        json_safe(window.get("out_of_sample")),
        _finite(window.get("degradation")),
        json_safe(window.get("in_sample_equity") or []),
        json_safe(window.get("oos_equity") or []),
        json_safe(window.get("dsr")),
        json_safe(window.get("pbo")),
        json_safe(window.get("importance")),
        window.get("error"),
    )


async def load_windows(connection: Connection, run_id: UUID) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        "SELECT * FROM optimization_windows WHERE run_id = $1 ORDER BY window_index", run_id
    )
    return [dict(r) for r in rows]


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


# -- reading ---------------------------------------------------------------------------------


async def is_finished(connection: Connection, run_id: UUID) -> bool:
    """Whether the run is recorded as over (completed, failed or interrupted)."""
    status = await connection.fetchval("SELECT status FROM optimization_runs WHERE id = $1", run_id)
    return status is not None and status != "running"


async def fetch_run(connection: Connection, run_id: UUID) -> dict[str, Any] | None:
    """A run with its trials (by window, then number) and windows, as plain values."""
    run = await connection.fetchrow("SELECT * FROM optimization_runs WHERE id = $1", run_id)
    if run is None:
        return None
    trials = await connection.fetch(
        """SELECT run_id, window_index, number, params, state, value, reason, metrics, node_id, seconds,
                  finished_at, cardinality(daily_returns) AS sessions
           FROM optimization_trials WHERE run_id = $1 ORDER BY window_index NULLS FIRST, number""",
        run_id,
    )
    return {
        **dict(run),
        "trials": [dict(t) for t in trials],
        "windows": await load_windows(connection, run_id),
    }


async def list_runs(
    connection: Connection, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Runs newest first (without trials), and how many there are in all."""
    rows = await connection.fetch(
        """SELECT id, kind, status, progress, objective, trials_planned, trials_done, best_trial, best_value,
                  best_params, dsr, pbo, error, created_at, updated_at, completed_at, config,
                  count(*) OVER () AS total
           FROM optimization_runs WHERE ($1::text IS NULL OR status = $1)
           ORDER BY created_at DESC, id LIMIT $2 OFFSET $3""",
        status,
        limit,
        offset,
    )
    if rows:
        return [dict(r) for r in rows], rows[0]["total"]
    total = await connection.fetchval(
        "SELECT count(*) FROM optimization_runs WHERE ($1::text IS NULL OR status = $1)", status
    )
    return [], total
