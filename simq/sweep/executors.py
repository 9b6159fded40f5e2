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
           "Task", "check_workers", "select_executor"]

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


# How often a worker looks whether the sweep that started it is still there (seconds).
PARENT_POLL = 0.5


def _start_worker() -> None:
    import signal
    import threading
    import time

    # Ctrl-C reaches the whole process group: the parent alone stops the sweep, cleanly,
    # instead of every worker printing its own traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command line's, if forked from it
    # A parent killed outright (kill -9, out of memory) cannot stop its pool: each worker
    # leaves on its own when it is handed to another parent. Polling is portable, and
    # works whether the parent forked the worker or a fork server did (which exits with
    # its parent). A thread, not a signal: it needs nothing from the run in progress.
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="simq-parent-watch", daemon=True).start()


def check_workers(workers: object, name: str = "workers") -> int | None:
    """``workers`` if it is None or an integer >= 1; else a ScenarioError naming ``name``."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ScenarioError(name, "must be an integer >= 1", workers)
    return workers


class ProcessExecutor:
    """A local pool of worker processes (all cores by default)."""

    def __init__(self, workers: int | None = None) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.workers = check_workers(workers) or os.cpu_count() or 1
        self.pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_start_worker)

    def map_unordered(self, fn: Callable[[Task], dict[str, Any]],
                      tasks: Sequence[Task]) -> Iterator[dict[str, Any]]:
        from concurrent.futures import FIRST_COMPLETED, Future, wait

        # A bounded window of submitted tasks keeps the parent's memory flat however
        # long the sweep is.
        todo = iter(tasks)
        pending: set[Future[dict[str, Any]]] = set()
        try:
            for t in itertools.islice(todo, 4 * self.workers):
                pending.add(self.pool.submit(fn, t))
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.add(self.pool.submit(fn, nxt))
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or failed: the runs under way are abandoned,
            # not waited for; what finished is already on disk.
            self.abort()
            raise

    def abort(self) -> None:
        """Stop the workers now, abandoning the runs under way."""
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.terminate()
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# How long to try to reach a dask scheduler before saying it cannot be reached.
CONNECT_TIMEOUT = "10s"


class DaskExecutor:
    """dask.distributed: a LocalCluster when no address is given, else that scheduler."""

    def __init__(self, scheduler: str | None = None, workers: int | None = None) -> None:
        check_workers(workers)
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ScenarioError("--executor", "dask needs the extra: pip install "
                                "'simq[dask]'", "dask") from None
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError, TypeError) as err:
                why = str(err).strip().splitlines()[0] if str(err).strip() else \
                    type(err).__name__
                raise ScenarioError("--scheduler", "cannot reach the dask scheduler "
                                    f"within {CONNECT_TIMEOUT} ({why})", scheduler) from None
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
    check_workers(workers)
    if not isinstance(name, str):
        return name
    if name == "serial":
        return SerialExecutor()
    if name == "processes":
        return ProcessExecutor(workers)
    if name == "dask":
        return DaskExecutor(scheduler, workers)
    raise ScenarioError("--executor", f"one of {', '.join(EXECUTORS)}", name)
