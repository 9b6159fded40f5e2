"""Where a sweep's tasks run: one after the other, a local process pool, or dask. Each
executor yields results as they finish, in any order, and keeps a bounded window of
submitted tasks so the parent's memory stays flat however long the sweep is."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from simq.errors import ScenarioError

__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "ProcessExecutor", "SerialExecutor",
           "Task", "select_executor"]

# One (point, replication): the point's scenario as a dict, its base folder and source, the
# root seed, the point's index, the replication, and whether random numbers are common.
Task = tuple[dict[str, Any], str | None, str, int, int, int, bool]


class Executor(Protocol):
    """Runs tasks and yields their results as they finish, in any order."""

    def map_unordered(self, fn: Callable[[Task], dict[str, Any]],
                      tasks: Sequence[Task]) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """One task after the other in this process: for debugging and tiny sweeps."""

    def map_unordered(self, fn: Callable[[Task], dict[str, Any]],
                      tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        for t in tasks:
            yield fn(t)

    def close(self) -> None:
        pass


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the parent alone stops the sweep, cleanly,
    # instead of every worker printing its own traceback.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessExecutor:
    """A local pool of worker processes (all cores by default)."""

    def __init__(self, workers: int | None = None) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers or os.cpu_count() or 1
        self.pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_ignore_sigint)

    def map_unordered(self, fn: Callable[[Task], dict[str, Any]],
                      tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        from concurrent.futures import FIRST_COMPLETED, Future, wait

        # A bounded window of submitted tasks keeps the parent's memory flat however
        # long the sweep is.
        todo = iter(tasks)
        pending: set[Future[dict[str, Any]]] = set()
        for t in itertools.islice(todo, 4 * self.workers):
            pending.add(self.pool.submit(fn, t))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.add(self.pool.submit(fn, nxt))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """dask.distributed: a LocalCluster when no address is given, else that scheduler."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ScenarioError("--executor", "dask needs the extra: pip install "
                                "'simq[dask]'", "dask") from None
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                                        threads_per_worker=1, processes=True,
                                        dashboard_address=None)
            self.client = Client(self.cluster)
        self.window = 4 * max(1, len(self.client.scheduler_info().get("workers", {})) or 1)

    def map_unordered(self, fn: Callable[[Task], dict[str, Any]],
                      tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        from dask.distributed import as_completed

        todo = iter(tasks)
        # pure=False: two tasks never share a key; every task is its own run.
        first = [self.client.submit(fn, t, pure=False)
                 for t in itertools.islice(todo, self.window)]
        queue = as_completed(first)
        for fut in queue:
            result = fut.result()
            fut.release()
            yield result
            nxt = next(todo, None)
            if nxt is not None:
                queue.add(self.client.submit(fn, nxt, pure=False))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


EXECUTORS = ("serial", "processes", "dask")


def select_executor(name: str | Executor, scheduler: str | None,
                    workers: int | None) -> Executor:
    """The executor a name stands for (``EXECUTORS``); an Executor object is used as it is."""
    if not isinstance(name, str):
        return name
    if name == "serial":
        return SerialExecutor()
    if name == "processes":
        return ProcessExecutor(workers)
    if name == "dask":
        return DaskExecutor(scheduler, workers)
    raise ScenarioError("--executor", f"one of {', '.join(EXECUTORS)}", name)
