"""Reconciliation in PostgreSQL (issue 14): each run and each difference it found, the pause
an unexplained one puts on new entries, the correcting entries, and the owner's
acknowledgement.

Written by the broker that runs reconciliation (services/alpaca_broker/reconciler.py), read
and acknowledged through the API. Nothing here decides anything: the rules are
`core/reconciliation.py`'s.

- **One finding, one row.** A difference still standing at the next run with the same figures
  (shares the owner bought by hand and the engine leaves alone) is not recorded or told again;
  once acknowledged it stays acknowledged while its figures stay the same.
- **The pause is a circuit breaker event** of type `reconciliation` with no expiry, so new
  entries are refused exactly as under the owner's halt while exits and stops still run. It is
  resolved when the last unexplained difference is acknowledged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from services.trading.core.reconciliation import Discrepancy, Resolution

# Correcting entries' decision ids: derived from their order id, so a re-sent report is the same.
CORRECTION_NAMESPACE = uuid.UUID("8a5c7f0e-7d1b-4c55-9a52-3a0c4d7b1e14")
PAUSE_TRIGGER = "reconciliation"
_PAUSE_IN_FORCE = "SELECT EXISTS (SELECT 1 FROM circuit_breaker_events WHERE resolved_at IS NULL AND trigger_type = 'reconciliation')"


@dataclass(frozen=True, slots=True)
class RunRecord:
    trigger: str  # start | interval
    started_at: datetime
    finished_at: datetime
    status: str  # agreed | differences | failed
    error: str | None = None
    positions_compared: int = 0
    orders_compared: int = 0
    engine_cash: Decimal | None = None
    broker_cash: Decimal | None = None
    broker_buying_power: Decimal | None = None
    broker_equity: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """A difference recorded by this run (not one known from an earlier run)."""

    id: int
    discrepancy: Discrepancy
    correction_order_id: str | None


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    changed: bool  # False: it was acknowledged before (nothing written)
    row: asyncpg.Record
    paused: bool  # whether new entries are still paused after it


def correction_decision_id(client_order_id: str) -> uuid.UUID:
    return uuid.uuid5(CORRECTION_NAMESPACE, client_order_id)


class ReconciliationStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- the broker's side: one run ----------------------------------------------------

    async def record_run(
        self, run: RunRecord, found: tuple[Discrepancy, ...], mode: str
    ) -> tuple[int, list[Recorded]]:
        """The run, its new findings and their correcting entries, and the pause if one is
        unexplained, in one transaction: a correction is written once or not at all."""
        async with self.pool.acquire() as connection, connection.transaction():
            # One writer at a time: two runs racing must not both record (and correct) one finding.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext('reconciliation'))")
            run_id = await connection.fetchval(
                """INSERT INTO reconciliation_runs (trigger, started_at, finished_at, status, error,
                       positions_compared, orders_compared, engine_cash, broker_cash, broker_buying_power,
                       broker_equity)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id""",
                run.trigger,
                run.started_at,
                run.finished_at,
                run.status,
                run.error,
                run.positions_compared,
                run.orders_compared,
                run.engine_cash,
                run.broker_cash,
                run.broker_buying_power,
                run.broker_equity,
            )
            recorded: list[Recorded] = []
            for discrepancy in found:
                if await _known(connection, discrepancy):
                    continue
                correction_id = None
                if discrepancy.correction is not None:
                    correction_id = await _write_correction(
                        connection, run_id, discrepancy, mode, run.finished_at
                    )
                row_id = await connection.fetchval(
                    """INSERT INTO reconciliation_discrepancies (run_id, kind, ticker, client_order_id,
                           engine_figure, broker_figure, resolution, rule, correction_order_id, pauses, told,
                           created_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id""",
                    run_id,
                    discrepancy.kind.value,
                    discrepancy.ticker,
                    discrepancy.client_order_id,
                    discrepancy.engine_figure,
                    discrepancy.broker_figure,
                    discrepancy.resolution.value,
                    discrepancy.rule,
                    correction_id,
                    discrepancy.pauses,
                    discrepancy.told,
                    run.finished_at,
                )
                recorded.append(Recorded(row_id, discrepancy, correction_id))
            pausing = [r for r in recorded if r.discrepancy.pauses]
            if pausing and not await connection.fetchval(_PAUSE_IN_FORCE):
                await connection.execute(
                    """INSERT INTO circuit_breaker_events (trigger_type, threshold_value, actual_value, ticker,
                           reason, cooldown_expires, created_at) VALUES ('reconciliation', 0, $1, NULL, $2, NULL, $3)""",
                    len(pausing),
                    _pause_reason(pausing),
                    run.finished_at,
                )
        return run_id, recorded

    async def unapplied_corrections(self, before: datetime) -> list[asyncpg.Record]:
        """Correcting entries written before `before` whose report the engine has not applied
        (the push was lost with Redis): the broker sends them again (applied once)."""
        return await self.pool.fetch(
            """SELECT b.id AS order_id, b.client_order_id, b.ticker, b.side, f.id AS fill_id, f.quantity,
                      f.price, f.filled_at
               FROM broker_orders b JOIN broker_fills f ON f.order_id = b.id
               WHERE b.reason = 'reconciliation' AND b.created_at < $1
                 AND NOT EXISTS (SELECT 1 FROM applied_fills a WHERE a.client_order_id = b.client_order_id)""",
            before,
        )

    # -- the owner's side --------------------------------------------------------------

    async def latest_runs(self, limit: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            """SELECT r.*, (SELECT count(*) FROM reconciliation_discrepancies d WHERE d.run_id = r.id) AS found
               FROM reconciliation_runs r ORDER BY r.started_at DESC, r.id DESC LIMIT $1""",
            limit,
        )

    async def open_discrepancies(self) -> list[asyncpg.Record]:
        """Told and not acknowledged yet, oldest first."""
        return await self.pool.fetch(
            "SELECT * FROM reconciliation_discrepancies WHERE told AND acknowledged_at IS NULL ORDER BY id"
        )

    async def discrepancy(self, discrepancy_id: int) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM reconciliation_discrepancies WHERE id = $1", discrepancy_id
        )

    async def broker_account(self) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT cash, buying_power, equity, updated_at FROM broker_account WHERE id = 1"
        )

    async def paused(self) -> bool:
        return await self.pool.fetchval(_PAUSE_IN_FORCE)

    async def acknowledge(self, discrepancy_id: int, source: str, now: datetime) -> Acknowledgement | None:
        """The owner has seen it. When no unexplained difference is left unacknowledged, the
        pause ends. None when there is no such discrepancy."""
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext('reconciliation'))")
            row = await connection.fetchrow(
                """UPDATE reconciliation_discrepancies SET acknowledged_at = $2, acknowledged_by = $3
                   WHERE id = $1 AND acknowledged_at IS NULL RETURNING *""",
                discrepancy_id,
                now,
                source[:500],
            )
            changed = row is not None
            if row is None:
                row = await connection.fetchrow(
                    "SELECT * FROM reconciliation_discrepancies WHERE id = $1", discrepancy_id
                )
                if row is None:
                    return None
            waiting = await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM reconciliation_discrepancies WHERE pauses AND acknowledged_at IS NULL)"
            )
            if not waiting:
                await connection.execute(
                    """UPDATE circuit_breaker_events SET resolved_at = $1
                       WHERE resolved_at IS NULL AND trigger_type = 'reconciliation'""",
                    now,
                )
            return Acknowledgement(changed, row, waiting)


async def _known(connection: asyncpg.Connection, discrepancy: Discrepancy) -> bool:
    """Recorded before with the same figures and still standing: an unexplained finding that
    nothing corrects (it would come back every run) is recorded and told once."""
    if not discrepancy.told or discrepancy.correction is not None:
        return False
    latest = await connection.fetchrow(
        """SELECT * FROM reconciliation_discrepancies
           WHERE told AND kind = $1 AND ticker IS NOT DISTINCT FROM $2 AND client_order_id IS NOT DISTINCT FROM $3
           ORDER BY id DESC LIMIT 1""",
        discrepancy.kind.value,
        discrepancy.ticker,
        discrepancy.client_order_id,
    )
    return (
        latest is not None
        and latest["resolution"] == Resolution.UNEXPLAINED.value == discrepancy.resolution.value
        and latest["engine_figure"] == discrepancy.engine_figure
        and latest["broker_figure"] == discrepancy.broker_figure
    )


async def _write_correction(
    connection: asyncpg.Connection, run_id: int, discrepancy: Discrepancy, mode: str, at: datetime
) -> str:
    """The correcting entry as the broker records any fill: an order (filled) and its fill. The
    engine's held positions are the sum of these fills, so the books agree from this commit on;
    the report the broker pushes next brings the engine's lots and trade history along."""
    correction = discrepancy.correction
    at = correction.at or at  # when the shares went, if the broker recorded the sale
    client_order_id = f"recon-{run_id}-{discrepancy.ticker}"
    order_id = await connection.fetchval(
        """INSERT INTO broker_orders (client_order_id, job_id, trading_decision_id, ticker, side, quantity,
               order_type, time_in_force, mode, reason, status, reject_reason, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'reconciliation', 'none', $7, 'reconciliation', 'filled', $8, $9, $9)
           RETURNING id""",
        client_order_id,
        uuid.uuid4(),
        correction_decision_id(client_order_id),
        discrepancy.ticker,
        correction.side,
        correction.quantity,
        mode,
        discrepancy.rule[:500],
        at,
    )
    await connection.execute(
        """INSERT INTO broker_fills (order_id, client_order_id, ticker, side, quantity, price, fee, filled_at)
           VALUES ($1, $2, $3, $4, $5, $6, 0, $7)""",
        order_id,
        client_order_id,
        discrepancy.ticker,
        correction.side,
        correction.quantity,
        correction.price,
        at,
    )
    return client_order_id


def _pause_reason(pausing: list[Recorded]) -> str:
    what = "; ".join(
        f"{r.discrepancy.kind.value}{' ' + r.discrepancy.ticker if r.discrepancy.ticker else ''}"
        for r in pausing[:5]
    )
    more = f" and {len(pausing) - 5} more" if len(pausing) > 5 else ""
    return (
        f"reconciliation: the broker's account differs in a way the engine cannot explain ({what}{more}); "
        "new entries paused until the owner acknowledges"
    )
