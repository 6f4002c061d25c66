"""jobd.Executor: the concurrent.futures interface, on jobd's warm workers."""

import concurrent.futures
import multiprocessing
import threading
import time

from ._pool import Pool


class Executor(concurrent.futures.Executor):
    """concurrent.futures.ProcessPoolExecutor's interface, on jobd's warm
    workers: submit() returns real Futures (as_completed and wait work), and
    many submits travel together, not one round trip each. A Future stays
    pending until its result comes (jobd does not say when a call starts):
    cancel() then succeeds and its result is dropped, but the call may run.

    max_workers: use at most this many of the jobd pool's workers.
    pool, socket, cluster_file, initializer, initargs, max_tasks_per_child: as
    for jobd.Pool.
    """

    def __init__(self, max_workers=None, mp_context=None, initializer=None, initargs=(), *,
                 max_tasks_per_child=None, pool=None, socket=None, cluster_file=None):
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._pool = Pool(max_workers, initializer, initargs, max_tasks_per_child, pool=pool,
                          socket=socket, cluster_file=cluster_file)
        self._lock = threading.Lock()
        self._pending = set()
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()

        def resolve(ok, value):
            with self._lock:
                self._pending.discard(future)
            if not future.set_running_or_notify_cancel():
                return  # cancelled while it waited: its result is dropped
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._pending.add(future)
        try:
            self._pool._call(fn, args, kwargs, resolve)
        except BaseException:
            with self._lock:
                self._pending.discard(future)
            raise
        return future

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """fn(*args) for args in zip(*iterables), in order; an item's exception
        is raised when its result is reached."""
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        deadline = None if timeout is None else time.monotonic() + timeout
        results = self._pool._imap(fn, zip(*iterables), chunksize, True, True, False)

        def in_order():
            try:
                while True:
                    remaining = None if deadline is None else max(0, deadline - time.monotonic())
                    try:
                        yield results.next(remaining)
                    except StopIteration:
                        return
                    except multiprocessing.TimeoutError:
                        raise concurrent.futures.TimeoutError from None
            finally:
                results._run.cancel()  # a no-op once the job has ended

        return in_order()

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No more submits; with cancel_futures, every future not done is
        cancelled, and so is the rest of the work in jobd (also items that had
        started)."""
        with self._lock:
            self._shutdown = True
            pending = list(self._pending) if cancel_futures else []
        if cancel_futures:
            for future in pending:
                future.cancel()
            calls = self._pool._calls
            if calls is not None:
                calls.run.cancel()
        self._pool.close()
        if wait:
            self._pool.join()
