"""jobd.Pool: multiprocessing.Pool's interface, run by jobd's warm workers."""

import collections
import os
import sys
import threading
import types

from . import _client, _job

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"


def timeout_error():
    """multiprocessing.TimeoutError, imported only when needed (multiprocessing
    costs a new program milliseconds it need not pay)."""
    import multiprocessing
    return multiprocessing.TimeoutError()
# Results of an imap held for a caller that has not taken them: at most so
# many, or so many bytes (pickled).
RESULTS_AHEAD = 4096
RESULTS_AHEAD_BYTES = 64 << 20


class AsyncResult:
    """The result of apply_async (and, as MapResult, of map_async), as in
    multiprocessing."""

    __class_getitem__ = classmethod(types.GenericAlias)

    def __init__(self, pool, callback=None, error_callback=None):
        self._pool = pool
        self._callback, self._error_callback = callback, error_callback
        self._event = threading.Event()
        self._success, self._value = None, None
        self._cancel = None  # cancels the job behind the result (Ctrl-C in get)

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._success

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        try:
            self._event.wait(timeout)
        except KeyboardInterrupt:  # Ctrl-C: the job stops in jobd too
            if self._cancel is not None:
                self._cancel()
            raise
        if not self.ready():
            raise timeout_error()
        if self._success:
            return self._value
        raise self._value

    def _set(self, success, value):
        self._success, self._value = success, value
        callback = self._callback if success else self._error_callback
        try:
            if callback is not None:
                callback(value)
        finally:
            self._event.set()


ApplyResult = AsyncResult


class MapResult(AsyncResult):
    """map_async's result: every value in order, or the first item's error
    (the rest of the job is then cancelled)."""

    def __init__(self, pool, count, callback, error_callback, progress):
        super().__init__(pool, callback, error_callback)
        self._values = [None] * count
        self._error = None
        self._progress = progress
        self._run = None

    def _deliver(self, first, results, failures, size):
        self._values[first:first + len(results)] = results
        if failures and self._error is None:
            self._error = failures[min(failures)]
            self._run.cancel()
        if self._progress is not None:
            self._progress.update(len(results))

    def _finish(self, error):
        if self._progress is not None:
            self._progress.close()
        if self._error is not None:
            self._set(False, self._error)
        elif error is not None:
            self._set(False, error)
        else:
            self._set(True, self._values)


class IMapIterator:
    """imap's results as they come (in order, or as they complete): an item's
    exception is raised at its turn, and the iteration goes on after it."""

    def __init__(self, progress):
        self._cond = threading.Condition()
        self._outcomes = collections.deque()  # (ok, value, pickled size)
        self._bytes = 0
        # Once its Pool is closed, results are kept however many: join() and
        # shutdown() wait for the job to end, not for its reader.
        self._unbounded = False
        self._ended, self._error = False, None
        self._progress = progress
        self._run = None
        # The collector waits for room on this, not on the lock's condition
        # (see _lock_for_collector), when it says so in _wants_room.
        self._room = threading.Event()
        self._wants_room = False

    def __iter__(self):
        return self

    def next(self, timeout=None):
        with self._cond:
            try:
                if not self._cond.wait_for(lambda: self._outcomes or self._ended, timeout):
                    raise timeout_error()
            except KeyboardInterrupt:  # Ctrl-C: the job stops in jobd too
                self._run.cancel()
                raise
            if not self._outcomes:
                if self._error is not None:
                    raise self._error
                raise StopIteration
            ok, value, size = self._outcomes.popleft()
            self._bytes -= size
            if self._wants_room:
                self._wants_room = False
                self._room.set()
        if ok:
            return value
        raise value

    __next__ = next

    def _deliver(self, first, results, failures, size):
        while True:
            if not self._lock_for_collector():
                return  # cancelled: no one wants them
            try:
                # A caller that takes results slowly holds the job back: memory stays bounded.
                if (not self._outcomes or self._run.cancelled or self._unbounded
                        or (len(self._outcomes) < RESULTS_AHEAD
                            and self._bytes < RESULTS_AHEAD_BYTES)):
                    share = size // len(results)
                    self._outcomes.extend((offset not in failures, failures.get(offset, result),
                                           share) for offset, result in enumerate(results))
                    self._bytes += share * len(results)
                    self._cond.notify_all()
                    break
                self._room.clear()
                self._wants_room = True
            finally:
                self._cond.release()
            self._room.wait(0.1)
        if self._progress is not None:
            self._progress.update(len(results))

    def _finish(self, error):
        if self._progress is not None:
            self._progress.close()
        if not self._lock_for_collector():
            # (Its holder is the caller's thread, in a signal handler: it
            # finds these when it looks next.)
            self._ended, self._error = True, error
            return
        try:
            self._ended, self._error = True, error
            self._cond.notify_all()
        finally:
            self._cond.release()

    def _lock_for_collector(self):
        """Takes the lock, for the job's collector thread; False, without it,
        once the job is cancelled while another thread holds it: a signal
        handler that terminates the Pool in the caller's thread, as it holds
        the lock in next(), waits for the job to end, which waits for this.
        (So the collector never waits on the lock's condition: taking the
        lock back after that wait cannot give up.)"""
        while not self._cond.acquire(timeout=0.05):
            if self._run.cancelled:
                return False
        return True

    def _wake(self, unbounded=False):
        with self._cond:
            self._unbounded |= unbounded
            self._cond.notify_all()
        self._room.set()


class _Calls:
    """The job that runs a Pool's apply_async calls (and an Executor's submits):
    each item a (function, args, kwargs), resolved as they complete. An item is
    known by its position in the job's input, which the binding tells as it
    takes it (calls from several threads take positions in the order they get
    there); an outcome that comes before its caller has noted it waits."""

    def __init__(self, spec, connection):
        self.pending = {}  # position -> resolve
        self.early = {}    # position -> outcome, come before its resolve was noted
        self.lock = threading.Lock()
        self.ended = False
        self.run = _job.Run(spec, connection, None, ordered=False, chunksize=0,
                            deliver=self._deliver, finish=self._finish).start()

    def call(self, function, args, kwargs, resolve):
        position = self.run.put_call((function, tuple(args), dict(kwargs)))
        with self.lock:
            outcome = self.early.pop(position, None)
            if outcome is None:
                self.pending[position] = resolve
        if outcome is not None:
            resolve(*outcome)

    def _deliver(self, position, results, failures, size):
        outcome = (not failures, failures[0] if failures else results[0])
        with self.lock:
            resolve = self.pending.pop(position, None)
            if resolve is None:
                self.early[position] = outcome
                return
        resolve(*outcome)

    def _finish(self, error):
        with self.lock:
            self.ended = True
            pending, self.pending = self.pending, {}
        for resolve in pending.values():
            resolve(False, error or _job.JobdError("the job ended before this call ran"))


def _progress_bar(enabled, total):
    """A tqdm bar on stderr if asked for and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, file=sys.stderr, unit="item")


class Pool:
    """multiprocessing.Pool's interface, on jobd's warm workers.

    processes: use at most this many of the jobd pool's workers (default: all).
    initializer(*initargs): runs once in each worker interpreter this Pool
        uses, before its first item there.
    maxtasksperchild: a worker's interpreter is replaced after this many items.
    pool: the jobd pool to run in ("io" for I/O-bound work); default: jobd's.
    socket: jobd's endpoint (default: $JOBD_SOCKET, else jobd's own).
    cluster_file: reach the jobd that wrote this cluster file (jobd
        --cluster-file), over TCP, from any host, or on that jobd's own host
        through its local socket (default: $JOBD_CLUSTER_FILE when no socket
        is named).
    retries: how often an item may kill its interpreter before it fails with
        WorkerLost (at most the pool's `retries`).
    timeout: seconds an item may run before it fails (at most the pool's).

    If no jobd runs, one is started (see README); JOBD_AUTOSTART=0 turns
    that off.
    """

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None, *, pool=None, socket=None, cluster_file=None, retries=None,
                 timeout=None):
        if processes is not None and (not isinstance(processes, int) or processes < 1):
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int)
                                             or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        interpreter = sys.executable
        if not interpreter:
            raise _job.JobdError("cannot tell which Python runs this program (sys.executable "
                                 "is empty), so the workers cannot run the same one; run it "
                                 "with a python3 program")
        initializing = b""
        if initializer is not None:
            token = os.urandom(16)  # this Pool's: its initializer runs once per interpreter
            initializing = _job.dumps_whole((token, initializer, tuple(initargs)),
                                            f"the initializer {initializer!r}")
        connection, workers = _job.connect(socket, pool or "", cluster_file)
        self._connect = _job.connector(socket, cluster_file)
        self._idle = [connection]  # connections no job uses now
        self._spec = dict(interpreter=interpreter,
                          path=_job.caller_path(), initializer=initializing,
                          max_items=maxtasksperchild or 0, pool=pool or "",
                          max_workers=processes or 0, retries=retries,
                          timeout=float(timeout or 0))
        self._processes = min(processes or workers, workers) or 1
        self._state = RUN
        self._lock = threading.Lock()
        self._runs = set()
        self._calls = None

    def __repr__(self):
        return f"<{type(self).__name__} state={self._state} pool={self._spec['pool'] or 'default'}>"

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()

    def __del__(self):
        if getattr(self, "_state", None) == RUN:
            try:
                self.terminate()
            except Exception:
                pass

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def _start(self, function, items, ordered, chunksize, star, target, collect_here=False):
        """A job that maps `function` over `items`, its outcomes to `target`.
        As in multiprocessing, `chunksize` items travel (and are pickled)
        together; jobd then sizes its tasks to the chunks' measured cost.
        `collect_here`: see Run.start."""
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(chunksize))
        with self._lock:
            self._check_running()
            run = _job.Run(self._spec, self._connection(), function, ordered, 0,
                           deliver=target._deliver,
                           finish=lambda error: self._ended(run, target, error), items=items,
                           chunk=chunksize, star=star)
            target._run = run
            target._cancel = run.cancel
            run.wake = getattr(target, "_wake", None)
            self._runs.add(run)
        run.start(collect_here)
        return target

    def _connection(self):
        """A connection for a new job (with the lock held): an idle one, or a new one."""
        if self._idle:
            return self._idle.pop()
        try:
            return self._connect()
        except RuntimeError as error:
            raise _job.JobdError(str(error)) from None

    def _ended(self, run, target, error):
        with self._lock:
            self._runs.discard(run)
            if not run.connection.broken and self._state != TERMINATE:
                self._idle.append(run.connection)
        target._finish(error)

    def _map_async(self, function, iterable, chunksize, callback, error_callback, star, progress,
                   wait=False):
        """map_async, or with `wait`, map: returns once the job has ended."""
        self._check_running()
        items = iterable if isinstance(iterable, (list, tuple, range)) else list(iterable)
        result = MapResult(self, len(items), callback, error_callback,
                           _progress_bar(progress, len(items)))
        if not items:
            result._set(True, [])
            return result
        if chunksize is None:  # multiprocessing's: four chunks per worker
            chunksize, extra = divmod(len(items), self._processes * 4)
            chunksize += 1 if extra else 0
        return self._start(function, items, True, chunksize, star, result, collect_here=wait)

    def _imap(self, function, iterable, chunksize, ordered, star, progress):
        self._check_running()
        total = len(iterable) if hasattr(iterable, "__len__") else None
        return self._start(function, iterable, ordered, chunksize, star,
                           IMapIterator(_progress_bar(progress, total)))

    def map(self, func, iterable, chunksize=None, *, progress=False):
        """[func(item) for item in iterable], computed by the workers."""
        return self._map_async(func, iterable, chunksize, None, None, False, progress, True).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None, *,
                  progress=False):
        return self._map_async(func, iterable, chunksize, callback, error_callback, False,
                               progress)

    def starmap(self, func, iterable, chunksize=None, *, progress=False):
        """[func(*args) for args in iterable], computed by the workers."""
        return self._map_async(func, iterable, chunksize, None, None, True, progress, True).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None,
                      *, progress=False):
        return self._map_async(func, iterable, chunksize, callback, error_callback, True,
                               progress)

    def imap(self, func, iterable, chunksize=1, *, progress=False):
        """func(item) for each item, in order, lazily: an endless iterable works."""
        return self._imap(func, iterable, chunksize, True, False, progress)

    def imap_unordered(self, func, iterable, chunksize=1, *, progress=False):
        """func(item) for each item, as they complete."""
        return self._imap(func, iterable, chunksize, False, False, progress)

    def apply(self, func, args=(), kwds={}):
        """func(*args, **kwds), computed by a worker."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        result = AsyncResult(self, callback, error_callback)
        calls = self._call(func, args, kwds, result._set)
        result._cancel = calls.run.cancel
        return result

    def _call(self, func, args, kwds, resolve):
        """Runs func(*args, **kwds) in the Pool's job of calls; returns that job."""
        if not callable(func):
            raise TypeError(f"{func!r} is not callable")
        with self._lock:
            self._check_running()
            if self._calls is None or self._calls.ended or self._calls.run.cancelled:
                self._calls = _Calls(self._spec, self._connection())
                self._runs.add(self._calls.run)
            calls = self._calls
        calls.call(func, args, kwds, resolve)
        return calls

    def close(self):
        """No more work: the workers finish what was given, then join() returns."""
        with self._lock:
            if self._state == RUN:
                self._state = CLOSE
            if self._calls is not None:
                self._calls.run.close()
            runs = list(self._runs)
        for run in runs:
            wake = run.wake  # (None once the run has ended)
            if wake is not None:
                wake(unbounded=True)

    def terminate(self):
        """Stops at once: every job of this Pool is cancelled in jobd."""
        with self._lock:
            self._state = TERMINATE
            runs = list(self._runs)
        for run in runs:
            run.cancel()
        for run in runs:
            if not run.collects_here():  # a callback that terminates: its own job ends after it
                run.wait()

    def join(self):
        """Waits for every job of this Pool to end; after close() or terminate()."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        while True:
            with self._lock:
                runs = list(self._runs)
            runs = [run for run in runs if not run.collects_here()]
            if not runs:
                return
            for run in runs:
                run.wait()
            with self._lock:
                self._runs.difference_update(run for run in runs if run._done.is_set())
