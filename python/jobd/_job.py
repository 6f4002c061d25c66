"""One jobd job of a pickled Python function, and what it needs: finding (or
starting) jobd, pickling items, unpickling results and errors."""

import atexit
import binascii
import itertools
import os
import pickle
import struct
import sys
import threading
import time
import weakref

from . import _client

EXCEPTION_MARK = "\njobd-pickled-exception:"  # as in _worker.py
# Items of an input at hand are handed over once pickling them has taken
# PUT_SECONDS (FIRST_PUT_SECONDS for the submission's, so that the workers
# start soon) or their pickles reach PUT_BYTES: cheap pickles travel
# together, each message costing more than they do, and costly ones do not
# keep the workers waiting (see Run._put_sized).
PUT_SECONDS = 0.002
FIRST_PUT_SECONDS = 0.0002
PUT_BYTES = 4 << 20
DELIVER_BATCH = 256  # results of single items handed out at once, in order
IDLE_EXIT = 600  # seconds a jobd started by jobd.Pool lives without a job


class JobdError(Exception):
    """jobd cannot run the job: none runs and none could be started, it
    refused the job (an unknown pool, say), or it died while running it."""


class RemoteError(Exception):
    """An item failed in a way that has no Python exception to re-raise: its
    exception could not be pickled or unpickled, or jobd ended it (a timeout).
    The message is the error's text, with the remote traceback when known."""


class WorkerLost(RemoteError):
    """An item kept killing the interpreter that ran it (a signal: SIGKILL, the
    OOM killer, a segfault in a C extension), more often than the pool's
    retries allow. The message names the signal."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (its __cause__)."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb


# ---------------------------------------------------------------- jobd itself

_started_lock = threading.Lock()


def endpoint_of(socket):
    """The endpoint to use: `socket`, else $JOBD_SOCKET, else jobd's default;
    a plain path is taken as ipc://PATH."""
    endpoint = socket or os.environ.get("JOBD_SOCKET") or _client.default_endpoint()
    if "://" not in endpoint:
        endpoint = "ipc://" + os.path.abspath(endpoint)
    return endpoint


def jobd_binary():
    """jobd beside this package in a build tree, else jobd on PATH."""
    import shutil
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "..", "bin", "jobd")
    return built if os.access(built, os.X_OK) else shutil.which("jobd")


def cluster_file_of(socket, cluster_file):
    """The cluster file to reach jobd by: `cluster_file`, else
    $JOBD_CLUSTER_FILE unless a socket is named; None: a local jobd."""
    if cluster_file is not None:
        if socket is not None:
            raise ValueError("name jobd's socket or its cluster file, not both")
        return os.fspath(cluster_file)
    if socket is None and os.environ.get("JOBD_CLUSTER_FILE"):
        return os.environ["JOBD_CLUSTER_FILE"]
    return None


def connector(socket, cluster_file):
    """A function that makes a new connection to the jobd named by `socket`
    or `cluster_file` (see cluster_file_of)."""
    path = cluster_file_of(socket, cluster_file)
    if path is not None:
        return lambda: _client.connect_cluster(path)
    endpoint = endpoint_of(socket)
    return lambda: _client.connect(endpoint)


def connect(socket, pool, cluster_file=None):
    """(connection, workers): a connection to a jobd that answers, and how
    many workers its pool `pool` (empty: the default) has. Starts a jobd
    (once, saying so on stderr) when none runs, unless JOBD_AUTOSTART=0 or
    it is reached by a cluster file (a head on another host)."""
    path = cluster_file_of(socket, cluster_file)
    if path is not None:
        try:
            connection = _client.connect_cluster(path)
        except RuntimeError as error:
            raise JobdError(str(error)) from None
        return connection, _client.pool_workers(connection, pool)
    endpoint = endpoint_of(socket)
    try:
        connection = _client.connect(endpoint)
        return connection, _client.pool_workers(connection, pool)
    except RuntimeError as error:
        problem = str(error)
    if not problem.startswith(("no jobd is running", "no jobd answers")):
        raise JobdError(problem) from None
    if os.environ.get("JOBD_AUTOSTART", "1") == "0":
        raise JobdError(f"{problem} (JOBD_AUTOSTART=0: jobd.Pool does not start one)") from None
    binary = jobd_binary()
    if binary is None:
        raise JobdError(f"{problem}; jobd.Pool would start one, but no jobd program is on PATH "
                        "(install jobd, or set PATH)") from None
    import subprocess
    with _started_lock:
        command = [binary, "--detach", "--idle-exit", str(IDLE_EXIT)]
        if socket or os.environ.get("JOBD_SOCKET"):
            command += ["--listen", endpoint]
        started = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        try:
            connection = _client.connect(endpoint)  # another program may have started it first
        except RuntimeError as error:
            raise JobdError(f"{problem}; starting one failed: {started.stderr.strip() or error}") \
                from None
        if started.returncode == 0:
            print(f"jobd: no jobd was running, so started one (pid {connection.daemon_pid}) at "
                  f"{endpoint}; it stops after {IDLE_EXIT} s without a job (JOBD_AUTOSTART=0 "
                  "turns this off)", file=sys.stderr)
    try:
        return connection, _client.pool_workers(connection, pool)
    except RuntimeError as error:
        raise JobdError(str(error)) from None


# ---------------------------------------------------------------- pickling

def dumps(value, what, *what_args):
    """`value` as an item's parts: its pickle (protocol 5) and out-of-band
    buffers. What refers to __main__ (or cannot be pickled by reference:
    lambdas, closures) is pickled by value with cloudpickle. `what` (a format
    string, filled with `what_args` only on error) names the value in an error."""
    buffers = []
    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        if b"__main__" not in data:
            return [data, *map(pickle.PickleBuffer.raw, buffers)] if buffers else [data]
    except Exception:
        pass
    import cloudpickle
    buffers = []
    try:
        data = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception as error:
        raise TypeError(f"jobd cannot send {what.format(*what_args)} to its workers: it cannot be "
                        f"pickled ({type(error).__name__}: {error}); pass what pickle can take "
                        "(module-level functions, plain data)") from error
    return [data, *map(pickle.PickleBuffer.raw, buffers)]


def dumps_whole(value, what):
    """`value` pickled in one piece (no out-of-band buffers), by value where
    plain pickle cannot (lambdas, closures, __main__): a job's function and
    initializer, sent once per job."""
    try:
        data = pickle.dumps(value, protocol=5)
        if b"__main__" not in data:
            return data
    except Exception:
        pass
    import cloudpickle
    try:
        return cloudpickle.dumps(value, protocol=5)
    except Exception as error:
        raise TypeError(f"jobd cannot send {what} to its workers: it cannot be pickled "
                        f"({type(error).__name__}: {error})") from error


_ONE_PART = struct.Struct("<II")  # a count of 1, then the part's length (as in _worker.py)


def loads(blob):
    """A result: the packed parts (common/args.h layout) unpickled."""
    count, length = _ONE_PART.unpack_from(blob)
    if count == 1:  # no out-of-band buffers: most results, so kept short
        return pickle.loads(memoryview(blob)[8:8 + length])
    view = memoryview(blob)
    parts, at = [], 4
    for _ in range(count):
        (length,) = struct.unpack_from("<I", view, at)
        parts.append(view[at + 4:at + 4 + length])
        at += 4 + length
    return pickle.loads(parts[0], buffers=parts[1:])


def unreadable_result(number, error):
    """The error of item `number` (from 1) whose result cannot be unpickled."""
    return RemoteError(f"the result of item {number} cannot be unpickled here: "
                       f"{type(error).__name__}: {error}")


def error_of(blob):
    """The exception to raise in the caller for a failed item."""
    text = bytes(blob).decode(errors="replace")
    mark = text.rfind(EXCEPTION_MARK)
    if mark >= 0:
        description, tb = (text[:mark].split("\n", 1) + [""])[:2]
        try:
            error = pickle.loads(binascii.a2b_base64(text[mark + len(EXCEPTION_MARK):]))
        except Exception as unpickling:
            return RemoteError(f"{text[:mark]}\n(the exception could not be unpickled here: "
                               f"{type(unpickling).__name__}: {unpickling})")
        if not isinstance(error, Exception):  # SystemExit, KeyboardInterrupt: not the caller's
            return RemoteError(text[:mark])
        error.__cause__ = RemoteTraceback(f'\n"""\n{tb}\n{description}\n"""')
        return error
    if "killed by SIG" in text or "stopped answering" in text:
        return WorkerLost(text)
    return RemoteError(text)


def caller_path():
    """The caller's sys.path, absolute: where its workers find its modules."""
    return [os.path.abspath(entry or os.curdir) for entry in sys.path if isinstance(entry, str)]


# ---------------------------------------------------------------- one job

_live = weakref.WeakSet()  # Runs not ended yet
_collecting = threading.local()  # `active` in a Run's collector thread (where callbacks run)
SPARE_SECONDS = 10  # how long a helper thread waits for the next job's work before it ends
_spare = []  # helper threads waiting for work
_spare_lock = threading.Lock()


def _forget_runs():
    """In a forked child: its parent's jobs are not the child's to cancel or
    wait for at exit (their eventfds and threads are the parent's), nor are
    the parent's spare helper threads."""
    global _spare_lock
    _live.clear()
    _spare.clear()
    _spare_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_runs)


@atexit.register
def _end_runs():
    """At exit, the jobs still running are cancelled and their threads ended
    before the interpreter goes: a thread left waiting in the binding could
    not take the interpreter back as it shuts down. The binding cancels the
    rest (jobs already ended whose helper threads may still wait in it) and
    lets every such wait out."""
    runs = list(_live)
    for run in runs:
        run.cancel()
    _client.prepare_exit()
    for run in runs:
        run.job.join()
        for work in run._work:
            if not work.running_here():
                work.join(5)


class Work:
    """A function run on a helper thread (see in_helper), or by its caller."""

    def __init__(self, target, args, name):
        self.target, self.args, self.name = target, args, name
        self.thread = None  # the thread that runs it, once it does
        self.done = threading.Event()

    def run(self):
        """Runs it in the current thread."""
        self.thread = threading.current_thread()
        try:
            self.target(*self.args)
        finally:
            self.end()

    def end(self):
        """It ran, or its caller did its part: its target (a bound method of
        its Run, a cycle) is let go, and join() returns."""
        self.target = self.args = None
        self.done.set()

    def join(self, timeout=None):
        return self.done.wait(timeout)

    def running_here(self):
        """Whether the current thread is running this work now."""
        return self.thread is threading.current_thread() and not self.done.is_set()


def in_helper(work):
    """Runs `work` on a helper thread: a spare one if any waits, else a new
    one, kept afterwards for SPARE_SECONDS; returns `work`. Starting a thread
    costs a Python program 0.15-0.3 ms (start() waits until it runs), a good
    part of a short job's cost; handing work to a waiting thread costs a
    wake-up."""
    with _spare_lock:
        helper = _spare.pop() if _spare else None
    if helper is None:
        _Helper(work)
    else:
        helper.give(work)
    return work


class _Helper:
    """A daemon thread that runs Work, then waits to be given more."""

    def __init__(self, work):
        self._work = work
        self._go = threading.Lock()  # released when work is given
        self._go.acquire()
        self._thread = threading.Thread(target=self._serve, daemon=True, name=work.name)
        self._thread.start()

    def give(self, work):
        self._work = work
        self._go.release()

    def _serve(self):
        thread = threading.current_thread()
        while True:
            work, self._work = self._work, None
            thread.name = work.name
            work.run()
            with _spare_lock:
                _spare.append(self)
            if self._go.acquire(timeout=SPARE_SECONDS):
                continue
            with _spare_lock:
                if self in _spare:  # not taken meanwhile: it ends
                    _spare.remove(self)
                    return
            self._go.acquire()  # taken as it gave up waiting: its work comes


def in_collector():
    """Whether this thread delivers some job's results (runs its callbacks)."""
    return getattr(_collecting, "active", False)


class Run:
    """One job: once started, a thread feeds it `items` (each the arguments
    tuple, or (function, args, kwargs) when `function` is None; or the caller
    puts them), another hands the outcomes to `deliver(first, results,
    failures, size)`: the results of the items from index `first` on (None
    where one failed), {offset: exception} of those that failed, and the size
    of their pickles;
    `finish(error)` is called once at the end (error None when every item has
    its outcome)."""

    def __init__(self, spec, connection, function, ordered, chunksize, deliver, finish,
                 items=None, chunk=1, star=False):
        self.deliver, self.finish = deliver, finish
        self.wake = None  # set by a target whose `deliver` may wait
        self.star = star  # each item is an arguments tuple (starmap)
        self.ordered = ordered
        # Items pickled together as one jobd item (multiprocessing's chunksize).
        self.chunk = chunk
        self.count = None  # of items, once the feeder knows it
        self.error = None
        self.cancelled = False
        self._done = threading.Event()
        if function is not None and not callable(function):
            raise TypeError(f"{function!r} is not callable")
        packed = b"" if function is None else dumps_whole(function, f"the function {function!r}")
        self.connection = connection  # this job's alone while it runs
        self.job = _client.Job(connection=connection, callable=packed, chunk=chunk,
                               ordered=ordered, chunksize=chunksize or 0, **spec)
        self._items = items
        # Who hands the outcomes out (a helper thread, or start()'s caller), then the feeder.
        self._work = [Work(self._collect, (), "jobd-results")]

    def start(self, collect_here=False):
        """Starts the job (once the caller knows this Run). Items at hand (a
        list, tuple or range) are put from here, two batches at most, the
        first with the job's submission; a helper thread puts the rest,
        another hands the outcomes out, or, if `collect_here`, the calling
        thread does, returning once the job has ended (a map that the caller
        waits for: no thread to wake for each result). Ctrl-C there cancels
        the job and goes up at once; a helper thread ends the Run."""
        _live.add(self)
        collector = self._work[0]
        if collect_here:
            collector.thread = threading.current_thread()  # collects_here(), in a signal handler too
        else:
            in_helper(collector)
        # A map() in a callback collects in that callback's thread: restored after.
        was_active = in_collector()
        try:
            if self._items is not None:
                parts, count = self._parts(self._items)
                put = 0 if count is None else \
                    self._guarded(self._put_sized, parts, count, 0, 2, here=True)
                if put is not None:  # more to put
                    rest = (self._put_lazy, parts) if count is None else \
                        (self._put_sized, parts, count, put)
                    self._work.append(in_helper(Work(self._guarded, rest, "jobd-items")))
                self._items = None
            if collect_here:
                _collecting.active = True
                self._hand_out()
        except BaseException as error:  # Ctrl-C, a thread that could not start
            self.error = self.error or error
            self.cancel()  # a helper collector then ends the Run
            if not collect_here:
                raise
            _collecting.active = was_active
            collector.end()
            # Its join may wait for jobd; exit waits for it (_end_runs).
            self._work.append(in_helper(Work(self._end, (), "jobd-results")))
            raise
        if collect_here:
            try:
                self._end()
            finally:
                _collecting.active = was_active
                collector.end()
        return self

    def put_call(self, call):
        """One item from the caller (apply_async, submit); returns its position
        in the job's input. From a callback (a collector thread) it never
        waits for room: that thread's results are what would make room."""
        return self.job.put([dumps(call, "the arguments of the call")], block=not in_collector())

    def collects_here(self):
        """Whether the current thread is this Run's collector."""
        return self._work[0].running_here()

    def close(self):
        self.job.close()

    def cancel(self):
        self.cancelled = True
        self.job.cancel()
        wake = self.wake  # (None once the run has ended)
        if wake is not None:
            wake()  # a `deliver` that waits for its caller gives up

    def wait(self, timeout=None):
        return self._done.wait(timeout)

    def _parts(self, items):
        """(each jobd item's parts, lazily; how many there are, None if
        `items` itself is lazy)."""
        sized = isinstance(items, (list, tuple, range))
        if self.chunk == 1:
            star = self.star
            return ((dumps(tuple(args) if star else (args,), "the arguments of item {}", n)
                     for n, args in enumerate(items, 1)), len(items) if sized else None)
        if sized:  # slices: no loop per item
            self.count = len(items)
            return ((self._dumps_chunk(items[start:start + self.chunk], start)
                     for start in range(0, len(items), self.chunk)), -(-len(items) // self.chunk))
        iterator = iter(items)
        chunks = iter(lambda: list(itertools.islice(iterator, self.chunk)), [])
        return (self._dumps_chunk(chunk, n * self.chunk) for n, chunk in enumerate(chunks)), None

    def _guarded(self, put, *args, here=False):
        """put(*args), where an error of the input (or of pickling it) ends
        the job; `here`: in the caller's thread, where Ctrl-C also goes up."""
        try:
            return put(*args)
        except _client.JobEnded:
            pass  # cancelled, or failed: the collector tells why
        except BaseException as error:
            self.error = self.error or error
            self.job.cancel()
            if here and not isinstance(error, Exception):
                raise

    def _put_sized(self, parts, count, put, batches=None):
        """Puts the items of a sized input, `count` in all, of which `put`
        are already, in batches (at most `batches`); returns how many are
        put, or None once the last is. Its first batch travels with the
        job's submission."""
        while batches != 0:
            batch = self._batch(parts, FIRST_PUT_SECONDS if put == 0 else PUT_SECONDS)
            if not batch and put < count:  # (the job fails: not results padded with None)
                raise RuntimeError(f"the input changed size during iteration: {count} items "
                                   f"became {put}")
            put += len(batch)
            if put >= count:
                self.job.put(batch, last=True)
                return None
            self.job.put(batch)
            batches = None if batches is None else batches - 1
        return put

    def _put_lazy(self, parts):
        """Puts each item as it comes: each may wait on its source."""
        for item in parts:
            self.job.put([item])
        self.job.put([], last=True)

    @staticmethod
    def _batch(parts, seconds):
        """The next items of `parts` pickled within `seconds` or PUT_BYTES
        (at least one, if any is left)."""
        batch, size = [], 0
        deadline = time.perf_counter() + seconds
        for item in parts:
            batch.append(item)
            # (Most items are one pickle: no loop for them.)
            size += len(item[0]) if len(item) == 1 else sum(memoryview(p).nbytes for p in item)
            if size >= PUT_BYTES or time.perf_counter() >= deadline:
                break
        return batch

    def _dumps_chunk(self, chunk, first):
        """A chunk's parts: [star, its items], pickled together. A slice of a
        range stays a range: a few bytes instead of an int object per item to
        make and pickle here (the interpreter makes them as it maps). Slices
        of other sequences go as lists: a subclass's slice may carry more
        than its items (torch.Size's are Sizes)."""
        if type(chunk) not in (list, tuple, range):
            chunk = list(chunk)
        if self.count is None and len(chunk) < self.chunk:
            self.count = first + len(chunk)  # the last chunk: its size is known now
        return dumps([self.star, chunk], "the arguments of items {}-{}", first + 1, first + len(chunk))

    def _outcomes(self, index, ok, value):
        """The outcomes of jobd's item `index`: (first item, results,
        {offset: exception} of the items that failed)."""
        if ok:
            try:
                value = loads(value)
            except Exception as error:
                ok, value = False, unreadable_result(index * self.chunk + 1, error)
        else:
            value = error_of(value)
        first = index * self.chunk
        if self.chunk == 1:
            return first, [value if ok else None], {} if ok else {0: value}
        if ok:  # the chunk's own outcomes
            results, failures = value
            return first, results, {offset: error_of(text.encode())
                                    for offset, text in failures.items()}
        # The chunk failed as a whole: so did each of its items.
        size = self.chunk if self.count is None else min(self.chunk, self.count - first)
        return first, [None] * size, dict.fromkeys(range(size), value)

    def _deliver_in_order(self, outcomes):
        """Hands out at once the outcomes of consecutive items (those of an
        ordered job come in order), as _outcomes would one by one."""
        results, failures, size = [], {}, 0
        for offset, (_, ok, value) in enumerate(outcomes):
            size += len(value)
            if ok:
                try:
                    results.append(loads(value))
                    continue
                except Exception as error:
                    value = unreadable_result(outcomes[0][0] + offset + 1, error)
            else:
                value = error_of(value)
            results.append(None)
            failures[offset] = value
        self.deliver(outcomes[0][0], results, failures, size)

    def _collect(self):
        """A helper thread's: hands the outcomes out, then ends the Run."""
        _collecting.active = True  # the callbacks' thread, until the Run has ended
        try:
            self._hand_out()
        except BaseException as error:  # from `deliver`: a callback's, say
            self.error = self.error or error
            self.job.cancel()
        finally:
            try:
                self._end()
            finally:
                _collecting.active = False  # the thread may serve another job next

    def _hand_out(self):
        """Hands the outcomes out until the job has ended."""
        while True:
            try:
                # Not long: Ctrl-C in a caller that collects is seen between takes.
                outcomes = self.job.take(0.1)
            except RuntimeError as error:  # the job's own error
                if not self.cancelled and self.error is None:
                    self.error = JobdError(str(error))
                return
            if outcomes is None:
                return
            if self.chunk == 1 and self.ordered:
                # A few at a time: imap's bound on results ahead holds
                # to within one of these, and the first is out sooner.
                for start in range(0, len(outcomes), DELIVER_BATCH):
                    self._deliver_in_order(outcomes[start:start + DELIVER_BATCH])
                continue
            for outcome in outcomes:
                self.deliver(*self._outcomes(*outcome), len(outcome[2]))

    def _end(self):
        """Once the job has ended (or was cancelled): `finish`, then wait() returns."""
        try:
            self.job.join()
            if self.error is None and self.cancelled:
                self.error = JobdError("the job was cancelled")
            _live.discard(self)
            self.finish(self.error)
        finally:
            self._done.set()
            # The caller's result keeps this Run (its cancel is a no-op now);
            # the Run lets go of the result, so that reference counting frees
            # a finished map's values at once, not the cyclic GC some maps later.
            self.deliver = self.finish = self.wake = None
