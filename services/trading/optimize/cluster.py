"""Ray for the optimizer (issue 16): a local Ray on this machine's cores by default, or an
existing cluster (`--ray-address`, `STONKS_RAY_ADDRESS`); the history put in the object store
once; each trial a task retried when its worker dies.

A worker reads the history from the object store: numpy arrays come back as read-only views of
the shared memory, not copies, and the worker keeps the last history it read for the next
trial. On a cluster every node needs this package installed (the same version), as any Ray
program's code does (docs/optimization.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ENV_ADDRESS = "STONKS_RAY_ADDRESS"
# A worker that dies mid-trial (killed, out of memory, its node lost) is replaced and the trial
# runs again, up to this many times; an exception inside the trial is not retried (it would
# fail the same way) but becomes a failed trial.
MAX_RETRIES = 3
MIN_OBJECT_STORE = 256 * 1024**2


@dataclass(frozen=True, slots=True)
class RayConnection:
    """Where the trials run. `owned`: this process started the local Ray and shuts it down."""

    owned: bool
    address: str | None
    cpus: int

    def shutdown(self) -> None:
        import ray

        if self.owned and ray.is_initialized():
            ray.shutdown()


def connect(address: str | None = None, num_cpus: int | None = None, data_bytes: int = 0) -> RayConnection:
    """Attach to the Ray of this process, to the cluster at `address` (or `STONKS_RAY_ADDRESS`),
    or start a local one on `num_cpus` cores (default: all of them)."""
    import ray

    address = address or os.environ.get(ENV_ADDRESS) or None
    if ray.is_initialized():
        return RayConnection(False, address, _cpus())
    # ERROR: Ray warns of what is fine here (no SIGTERM handler when started off the main thread).
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address:
        ray.init(address=address, **quiet)
        return RayConnection(True, address, _cpus())
    ray.init(
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        object_store_memory=max(MIN_OBJECT_STORE, 4 * data_bytes),
        **quiet,
    )
    return RayConnection(True, None, _cpus())


def _cpus() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 0)))


# -- the trial task -----------------------------------------------------------------------------

_DATA: dict[str, Any] = {}  # in a worker: the last history read from the object store, by its id


def _history(holder: list) -> Any:
    import ray

    ref = holder[0]
    key = ref.hex()
    if key not in _DATA:
        _DATA.clear()  # one history at a time: an old one would pin its memory in the store
        _DATA[key] = ray.get(ref)
    return _DATA[key]


def _run_trial(holder: list, spec: Any, evaluate: Callable[..., Any]) -> Any:
    """The task: `evaluate(history, spec, node_id)` on the worker's node. The history's
    reference travels inside a list, so Ray hands it over unresolved and the worker can keep
    what it read."""
    import ray

    return evaluate(_history(holder), spec, ray.get_runtime_context().get_node_id())


def trial_task() -> Any:
    """The Ray remote function running one trial on one CPU, retried when its worker dies."""
    import ray

    return ray.remote(_run_trial).options(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)
