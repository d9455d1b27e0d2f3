"""Applies `infra/migrations/*.sql` in order, each once, recorded in `schema_migrations`.

Schema changes happen only here (docs/contracts.md section 2). A session-level advisory lock makes two
processes starting together take turns: the second finds everything applied. Each file runs
in its own transaction, so a failing migration leaves the database as it was before it. A
checksum catches a migration edited after it was applied, which would otherwise drift silently.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "infra" / "migrations"
# An arbitrary constant shared by every process of this project: "stonks" in ASCII.
MIGRATION_LOCK_KEY = 0x73746F6E6B73
_FILENAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNN_snake_case.sql")
        migrations.append(Migration(match.group(1), path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number in {directory}")
    return migrations


_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text        PRIMARY KEY,
    filename    text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


async def upgrade(connection: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every pending migration; return the file names applied (empty when up to date)."""
    migrations = discover(directory)
    await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await connection.execute(_CREATE_LEDGER)
        applied = {
            r["version"]: r["checksum"] for r in await connection.fetch("SELECT * FROM schema_migrations")
        }
        done: list[str] = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"{migration.path.name} changed after it was applied; add a new migration"
                    )
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, filename, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.path.name,
                    migration.checksum,
                )
            done.append(migration.path.name)
        return done
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
