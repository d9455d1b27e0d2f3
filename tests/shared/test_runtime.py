"""Which key signs the order jobs: the deployment's (environment or secrets directory), else
one generated on first start and kept in the data directory, the same after a restart."""

from __future__ import annotations

import os
import stat
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from services.shared.config import ConfigError, load_config
from services.shared.order_signing import OrderSigner, UnsignedOrderJob
from services.shared.orders import OrderJob, client_order_id
from services.shared.runtime import ORDER_SIGNING_KEY_FILE, order_signer
from services.shared.schemas import OrderReason, OrderSide

KEY = "a-deployment-key-of-more-than-32-characters"


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("STONKS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STONKS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _signed_job(signer: OrderSigner) -> str:
    decision = uuid.uuid4()
    return signer.sign(
        OrderJob(
            job_id=uuid.uuid4(),
            client_order_id=client_order_id(decision),
            trading_decision_id=decision,
            ticker="XYZ",
            side=OrderSide.BUY,
            quantity=Decimal(3),
            reason=OrderReason.ENTRY,
            created_at=datetime(2024, 3, 5, 15, tzinfo=UTC),
        )
    )


def test_a_generated_key_is_kept_0600_and_survives_a_restart(environment: Path) -> None:
    first = order_signer(load_config())
    kept = environment / "data" / ORDER_SIGNING_KEY_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    after_restart = order_signer(load_config())
    assert after_restart.verified(_signed_job(first))  # a job queued before the restart still fills


def test_a_deployment_gives_the_key_in_the_environment(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STONKS_ORDER_SIGNING_KEY", KEY)
    signer = order_signer(load_config())
    assert signer.verified(_signed_job(OrderSigner.from_secret(KEY)))  # a broker elsewhere shares it
    with pytest.raises(UnsignedOrderJob):
        signer.verified(_signed_job(OrderSigner.generate()))
    assert not (environment / "data" / ORDER_SIGNING_KEY_FILE).exists()
    monkeypatch.setenv("STONKS_ORDER_SIGNING_KEY", "short")
    with pytest.raises(ConfigError, match="STONKS_ORDER_SIGNING_KEY"):
        order_signer(load_config())


def test_or_in_a_file_of_the_secrets_directory(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = environment / "secrets"
    secrets.mkdir()
    (secrets / "stonks_order_signing_key").write_text(KEY + "\n")
    monkeypatch.setenv("STONKS_SECRETS_DIR", str(secrets))
    assert order_signer(load_config()).verified(_signed_job(OrderSigner.from_secret(KEY)))
    assert KEY not in repr(load_config())
