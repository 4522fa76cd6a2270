"""Ray, for the verbs that scale out (`prepare --ray`, `synth --ray`): join or start a cluster, and a pool of actors
that each load their models once and are restarted, with their call retried, when their process dies.

Ray is an optional extra (`pip install 'tortuner[ray]'`). tortuner schedules nothing itself: Ray places the actors,
`ActorPool` hands each the next item when it is free, and a retried call runs again on a restarted actor, so the
verbs only need their items to be pure (a group of `synth`, an input of `prepare`) to get no duplicates and no holes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from tortuner.errors import TortunerError


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """The `ray` module, connected: `local` starts a cluster on this machine (shut down on exit), `auto` or
    `HOST:PORT` joins a running one (`ray start --head` / `ray start --address`). Already connected (a driver that
    called `ray.init` itself, e.g. a test): used as it is."""
    try:
        import ray
    except ImportError:
        raise TortunerError("--ray needs Ray: pip install 'tortuner[ray]'") from None
    started = False
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
            else:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise TortunerError(f"--ray {address}: cannot connect ({str(e).splitlines()[0][:150]})") from None
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def actor_pool(ray: Any, cls: type, workers: int, *args: Any, gpu: bool = False) -> Any:
    """`workers` actors of `cls(*args)` (0 = one per CPU of the cluster, or per GPU with `gpu`), each holding one CPU
    (or one GPU), restarted without limit when their process dies, with the interrupted call retried on the new one;
    as a `ray.util.ActorPool`."""
    from ray.util import ActorPool

    slots = ray.cluster_resources().get("GPU" if gpu else "CPU", 1)
    n = workers or max(1, int(slots))
    resources = {"num_gpus": 1} if gpu else {"num_cpus": 1}
    remote = ray.remote(max_restarts=-1, max_task_retries=-1, **resources)(cls)
    return ActorPool([remote.remote(*args) for _ in range(n)])
