"""A search on a simulated multi-node Ray cluster (`ray.cluster_utils.Cluster`): a head with no
CPUs and two worker nodes of one CPU each, the driver attached by address as `--ray-address`
does. The trials land on both nodes, each recorded with the node that ran it."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest

from services.trading.backtest import sample_backtest_data
from services.trading.optimize import store
from services.trading.optimize.config import OptimizationConfig
from services.trading.optimize.runner import planned_trials, run_optimization
from services.trading.optimize.trial import COMPLETE

pytestmark = pytest.mark.integration
STORE_BYTES = 100 * 1024**2


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": STORE_BYTES, "include_dashboard": False},
    )
    for _ in range(2):
        nodes.add_node(num_cpus=1, object_store_memory=STORE_BYTES)
    nodes.wait_for_nodes()
    try:
        yield nodes
    finally:
        if ray.is_initialized():
            ray.shutdown()
        nodes.shutdown()


async def test_trials_land_on_more_than_one_node(db, cluster) -> None:
    import ray

    config = OptimizationConfig.parse(
        start_date="2005-01-03",
        end_date="2005-12-30",
        initial_capital="10000",
        risk_tier="aggressive",
        tickers=["AAPL", "MSFT"],
        signals="momentum",
        space={"reward_risk_ratio": {"low": 1, "high": 3, "step": 0.5}},
        sampler="random",
        trials=8,
    )
    data = sample_backtest_data(config.backtest.start_date, config.backtest.end_date, config.backtest.tickers)
    run_id = uuid4()
    await store.create_run(db, run_id, config.kind, config.to_json(), "sharpe", planned_trials(config, data))
    report = await run_optimization(db, run_id, config, data, ray_address=cluster.address)
    assert not ray.is_initialized()  # attached by address, detached at the end
    run = await store.fetch_run(db, run_id)
    assert run["status"] == "completed" and run["config"]["parallelism"] == 2  # the cluster's CPUs
    nodes = {t["node_id"] for t in run["trials"]}
    worker_nodes = {n.node_id for n in cluster.list_all_nodes() if n is not cluster.head_node}
    assert nodes == worker_nodes and len(nodes) == 2
    assert [t.state for t in report.trials] == [COMPLETE] * 8
