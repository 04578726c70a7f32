"""Where chunks of rows are explained: this process, local worker processes, or a Dask cluster.

Every backend runs ``function(*shared, *job)`` for each job and yields the results in job order,
with a bounded number of jobs in flight, so rows stream through in constant memory. Results do not
depend on the backend: every row's random stream comes from the seed, the row and the method.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from xai_cli.errors import BadInput

BACKENDS = ("local", "dask")


class LocalBackend:
    """This process (``n_jobs == 1``) or ``n_jobs`` worker processes through joblib (loky)."""

    def __init__(self, n_jobs: int = 1):
        self.n_jobs = usable_workers(n_jobs)

    def map_ordered(self, function: Callable, shared: tuple, jobs: Iterable[tuple]) -> Iterator[Any]:
        if self.n_jobs == 1:
            for job in jobs:
                yield function(*shared, *job)
            return
        from joblib import Parallel, delayed

        # loky starts workers with one BLAS/OpenMP thread each: faster than oversubscribing cores.
        parallel = Parallel(n_jobs=self.n_jobs, return_as="generator", pre_dispatch="2*n_jobs")
        yield from parallel(delayed(function)(*shared, *job) for job in jobs)

    def close(self) -> None:
        """Nothing to release: joblib's workers are reused across runs and end with the process."""


class DaskBackend:
    """A Dask cluster: ``scheduler`` is its address, or ``None`` for a LocalCluster on this machine.

    The shared objects (the model, already scanned and loaded on this client) are sent to every
    worker once with ``scatter(..., broadcast=True)``; jobs are submitted a few per worker ahead.
    """

    def __init__(self, scheduler: str | None = None, *, n_workers: int | None = None):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise BadInput(
                "--backend dask needs the dask extra",
                hint="pip install 'xai-cli[dask]' (dask and distributed)",
            ) from None
        self._cluster = None
        try:
            if scheduler is None:
                self._cluster = LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
                )
                self.client = Client(self._cluster)
            else:
                self.client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise BadInput(
                f"cannot reach the Dask scheduler {scheduler}: {exc}", hint="check --scheduler host:port"
            ) from None

    def map_ordered(self, function: Callable, shared: tuple, jobs: Iterable[tuple]) -> Iterator[Any]:
        # Everything travels pickled, as it does to local workers: Dask's own pandas serialization
        # can change a frame's memory layout, and with it the last bits of a BLAS product.
        shared_future = self.client.scatter(_Pickled(shared), broadcast=True)
        ahead = 2 * max(1, len(self.client.scheduler_info().get("workers", {})))
        in_flight: deque = deque()
        for job in jobs:
            in_flight.append(self.client.submit(_call, function, shared_future, _Pickled(job), pure=False))
            if len(in_flight) >= ahead:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


class _Pickled:
    """A tuple that Dask serializes with pickle, whole."""

    def __init__(self, items: tuple):
        self.items = items


def _call(function: Callable, shared: _Pickled, job: _Pickled) -> Any:
    return function(*shared.items, *job.items)


def usable_workers(n_jobs: int) -> int:
    """At most one worker process per CPU: more only costs memory and start-up time (thousands of
    them take the machine down), and the numbers are the same for any count."""
    return max(1, min(int(n_jobs), os.cpu_count() or 1))


def make_backend(name: str, *, n_jobs: int = 1, scheduler: str | None = None) -> LocalBackend | DaskBackend:
    """The backend for ``--backend``/``--n-jobs``/``--scheduler``."""
    if name not in BACKENDS:
        raise BadInput(f"unknown --backend {name!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
    if name == "dask":
        return DaskBackend(scheduler, n_workers=usable_workers(n_jobs) if n_jobs > 1 else None)
    if scheduler is not None:
        raise BadInput("--scheduler is for --backend dask", hint="add --backend dask, or drop --scheduler")
    return LocalBackend(n_jobs)
