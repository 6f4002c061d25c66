"""jobd.Pool against multiprocessing.Pool's interface and results."""

import functools
import gc
import itertools
import multiprocessing
import threading
import time
import weakref

import pytest

import jobd
import work


@pytest.fixture
def pool(jobd_server):
    with jobd.Pool() as p:
        yield p
    jobd_server.wait_idle()


@pytest.fixture(scope="module")
def reference():
    with multiprocessing.Pool(2) as p:
        yield p


def test_map_equals_multiprocessing(pool, reference):
    items = list(range(1000))
    assert pool.map(work.square, items) == reference.map(work.square, items)
    for chunksize in (1, 7, 5000):
        assert pool.map(work.square, items, chunksize) == reference.map(work.square, items,
                                                                         chunksize)
    stepped = range(1000, 10, -3)  # its chunks travel as ranges
    assert pool.map(work.square, stepped, 7) == reference.map(work.square, stepped, 7)
    assert pool.map(work.square, []) == []
    assert pool.map(work.square, iter(range(5))) == [0, 1, 4, 9, 16]


class Slices(list):
    """A list whose slices are its own kind and hold what pickle refuses."""

    def __getitem__(self, index):
        if not isinstance(index, slice):
            return super().__getitem__(index)
        part = Slices(super().__getitem__(index))
        part.lock = threading.Lock()
        return part


def test_chunks_of_a_sequence_subclass_travel_as_lists(pool):
    assert pool.map(work.square, Slices(range(10)), 3) == [n * n for n in range(10)]


def test_a_list_that_shrinks_as_it_is_read_fails_the_map(pool):
    items = list(range(10))

    class Shrinks:
        def __reduce__(self):
            del items[2:]
            return int, (0,)
    items.insert(1, Shrinks())
    with pytest.raises(RuntimeError, match="changed size during iteration: 11 items became 2"):
        pool.map(work.square, items, chunksize=1)


def test_starmap_equals_multiprocessing(pool, reference):
    pairs = [(a, b) for a in range(30) for b in range(30)]
    assert pool.starmap(work.add, pairs) == reference.starmap(work.add, pairs)
    assert pool.starmap(work.add, pairs, chunksize=1) == reference.starmap(work.add, pairs)
    assert pool.starmap_async(work.add, [(1, 2)]).get(10) == [3]


def test_objects_of_every_kind_travel(pool):
    items = [None, 1.5, "text", b"bytes", bytearray(b"ba"), {"a": [1, (2, 3)]}, {1, 2},
             complex(1, 2), 10 ** 40, range(3), frozenset("ab")]
    assert pool.map(work.echo, items) == items
    assert pool.map(work.echo, items, chunksize=1) == items


def test_functions_by_value(pool):
    offset = 10
    assert pool.map(lambda x: x + offset, range(5)) == [10, 11, 12, 13, 14]

    def closure(x):
        return x * offset
    assert pool.map(closure, range(3), chunksize=1) == [0, 10, 20]
    assert pool.apply(lambda a, b=1: a - b, (5,), {"b": 2}) == 3


def test_results_go_as_soon_as_the_caller_drops_them(pool):
    """With the cyclic GC off, as between its runs: a job must leave no cycle
    that holds its results (a loop of maps of 100,000 ints grew to 170 MB
    and faulted its memory in afresh for each map)."""
    calls = {"map": lambda tokens: pool.map(work.echo, tokens),
             "map_async": lambda tokens: pool.map_async(work.echo, tokens).get(10),
             "imap": lambda tokens: list(pool.imap(work.echo, tokens)),
             "apply_async": lambda tokens: [pool.apply_async(work.echo, (tokens[0],)).get(10)]}
    gc.collect()
    gc.disable()
    try:
        for name, call in calls.items():
            values = call([work.Token() for _ in range(3)])
            references = [weakref.ref(value) for value in values]
            del values
            assert [reference() for reference in references] == [None] * len(references), name
    finally:
        gc.enable()


def test_map_async_callback(pool):
    seen = []
    done = threading.Event()
    result = pool.map_async(work.square, range(10), callback=lambda v: (seen.append(v),
                                                                          done.set()))
    assert result.get(10) == [x * x for x in range(10)]
    assert done.wait(5) and seen == [[x * x for x in range(10)]]
    assert result.ready() and result.successful()


def test_map_async_error_callback(pool):
    errors = []
    result = pool.map_async(work.divide, [1, 2], callback=None,
                            error_callback=errors.append)
    result.wait(10)
    assert result.ready() and not result.successful()
    with pytest.raises(TypeError):  # divide(a) misses b
        result.get()
    assert len(errors) == 1 and isinstance(errors[0], TypeError)


def test_async_result_timeout_and_not_ready(pool):
    result = pool.apply_async(work.sleep, (1,))
    assert not result.ready()
    with pytest.raises(ValueError):
        result.successful()
    with pytest.raises(multiprocessing.TimeoutError):
        result.get(timeout=0.05)
    result.wait()
    assert result.ready() and result.successful() and result.get() == 1


def test_apply_and_apply_async(pool):
    assert pool.apply(work.add, (2, 3)) == 5
    assert pool.apply(work.add, (), {"a": 1, "b": 2}) == 3
    got, errors = [], []
    results = [pool.apply_async(work.square, (i,), callback=got.append) for i in range(100)]
    failing = pool.apply_async(work.divide, (1, 0), error_callback=errors.append)
    assert [r.get(10) for r in results] == [i * i for i in range(100)]
    with pytest.raises(ZeroDivisionError):
        failing.get(10)
    assert sorted(got) == [i * i for i in range(100)]
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)


def test_imap_in_order_and_unordered(pool, reference):
    assert list(pool.imap(work.square, range(100))) == list(reference.imap(work.square,
                                                                            range(100)))
    assert list(pool.imap(work.square, range(100), chunksize=8)) == [x * x for x in range(100)]
    assert sorted(pool.imap_unordered(work.square, range(100))) == [x * x for x in range(100)]
    # As they complete: the quick one first.
    assert list(pool.imap_unordered(work.sleep, [0.6, 0.01])) == [0.01, 0.6]


def test_imap_error_at_its_turn_then_goes_on(pool):
    results = pool.imap(work.divide, [(1,), (1, 0)], chunksize=1)
    with pytest.raises(TypeError):
        next(results)
    with pytest.raises(TypeError):
        next(results)
    with pytest.raises(StopIteration):
        next(results)
    it = pool.imap(work.sleep, [1])
    with pytest.raises(multiprocessing.TimeoutError):
        it.next(timeout=0.05)
    assert it.next(timeout=10) == 1


def test_imap_of_an_endless_generator_is_lazy(pool):
    pulled = itertools.count()

    def endless():
        for n in itertools.count():
            next(pulled)
            yield n
    squares = pool.imap(work.square, endless())
    assert [next(squares) for _ in range(2000)] == [x * x for x in range(2000)]
    time.sleep(0.5)
    taken = next(pulled)
    # What is read ahead is bounded by the queues and windows, not the input.
    assert taken < 40000, f"{taken} items pulled from an endless generator"
    time.sleep(0.5)
    assert next(pulled) - taken < 5, "the generator is still being drained"


def test_processes_limits_the_workers_used(jobd_server):
    with jobd.Pool(processes=1) as one:
        assert len(set(one.map(work.slow_pid, [0.05] * 8, chunksize=1))) == 1
    with jobd.Pool() as every:
        assert len(set(every.map(work.slow_pid, [0.1] * 8, chunksize=1))) == 2
    with pytest.raises(ValueError):
        jobd.Pool(processes=0)


def test_io_pool(jobd_server):
    start = time.monotonic()
    with jobd.Pool(pool="io") as io:
        assert io.map(work.sleep, [0.3] * 8) == [0.3] * 8
    # Eight workers: together, not one after the other.
    assert time.monotonic() - start < 2.0
    with pytest.raises(ValueError, match="no pool 'nope'.*cpu, io"):
        jobd.Pool(pool="nope")


def test_close_join_terminate(jobd_server):
    p = jobd.Pool()
    results = [p.apply_async(work.sleep, (0.2,)) for _ in range(3)]
    mapped = p.map_async(work.square, range(10))
    with pytest.raises(ValueError):
        p.join()  # still running
    p.close()
    with pytest.raises(ValueError, match="Pool not running"):
        p.map(work.square, [1])
    p.join()
    assert [r.get(0) for r in results] == [0.2] * 3 and mapped.get(0) == list(
        x * x for x in range(10))

    p = jobd.Pool()
    pending = p.map_async(work.sleep, [5] * 4, chunksize=1)
    time.sleep(0.3)
    start = time.monotonic()
    p.terminate()
    p.join()
    assert time.monotonic() - start < 3
    with pytest.raises(jobd.JobdError, match="cancelled"):
        pending.get(5)
    jobd_server.wait_idle()


def test_context_manager_terminates(jobd_server):
    with jobd.Pool() as p:
        p.map_async(work.sleep, [5] * 2, chunksize=1)
        time.sleep(0.3)
    jobd_server.wait_idle(timeout=5)


def test_initializer_once_per_interpreter_per_pool(jobd_server, tmp_path):
    log = tmp_path / "init.log"
    with jobd.Pool(initializer=work.record_init, initargs=(str(log), "first")) as p:
        values = p.map(work.initialized, range(40), chunksize=1)
        p.map(work.initialized, range(40), chunksize=1)  # a second job: no second run
    assert set(values) == {"first"}
    lines = log.read_text().split()
    pids = lines[0::2]
    assert len(pids) == len(set(pids)) and 1 <= len(pids) <= 2, lines
    with jobd.Pool(initializer=work.record_init, initargs=(str(log), "second")) as p:
        assert set(p.map(work.initialized, range(10), chunksize=1)) == {"second"}


def test_maxtasksperchild_replaces_interpreters(jobd_server):
    with jobd.Pool(processes=1, maxtasksperchild=3) as p:
        pids = p.map(work.pid, range(9), chunksize=1)
    assert len(set(pids)) == 3 and all(pids.count(x) == 3 for x in set(pids)), pids


def test_caller_environment_and_directory(jobd_server, tmp_path, monkeypatch):
    monkeypatch.setenv("JOBD_TEST_VARIABLE", "from the caller")
    monkeypatch.chdir(tmp_path)
    with jobd.Pool() as p:
        assert p.map(work.environment, ["JOBD_TEST_VARIABLE"]) == ["from the caller"]
        assert p.map(work.cwd, [0]) == [str(tmp_path)]


def test_progress_bar_on_a_terminal(jobd_server):
    import os
    import pty
    import subprocess
    import sys
    from conftest import BUILD, HERE
    source = ("import jobd, work\n"
              "with jobd.Pool() as pool:\n"
              "    assert pool.map(work.square, range(50), progress=True) == "
              "[x * x for x in range(50)]\n"
              "    assert list(pool.imap(work.square, range(7), progress=True)) == "
              "[x * x for x in range(7)]\n")
    env = dict(os.environ, PYTHONPATH=os.path.join(BUILD, "python") + os.pathsep + HERE)
    controller, terminal = pty.openpty()
    program = subprocess.Popen([sys.executable, "-c", source], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the program ended: the terminal is gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert program.wait(30) == 0, shown.decode(errors="replace")
    assert b"50/50" in shown and b"7/7" in shown, shown.decode(errors="replace")
    # Not a terminal: no bar.
    quiet = subprocess.run([sys.executable, "-c", source], env=env, capture_output=True)
    assert quiet.returncode == 0 and quiet.stderr == b"", quiet.stderr


def test_a_failing_item_in_a_chunk_does_not_run_the_others_again(jobd_server, tmp_path):
    log = tmp_path / "calls"
    with jobd.Pool() as p:
        results = p.imap(functools.partial(work.logged, str(log)), range(10), chunksize=10)
        got = []
        for _ in range(10):
            try:
                got.append(next(results))
            except ValueError:
                got.append("failed")
    assert got == [0, 1, 2, 3, 4, "failed", 6, 7, 8, 9]
    assert sorted(int(x) for x in log.read_text().split()) == list(range(10)), "each item once"


def test_a_failing_initializer_fails_every_job_of_its_pool(jobd_server):
    with jobd.Pool(processes=1, initializer=work.failing_init) as p:
        for _ in range(3):
            with pytest.raises(RuntimeError, match="the initializer fails"):
                p.map(work.square, [1, 2], chunksize=1)


def test_terminate_from_a_callback_returns(jobd_server):
    p = jobd.Pool()
    done = threading.Event()
    p.apply_async(work.square, (2,), callback=lambda _: (p.terminate(), done.set()))
    assert done.wait(10), "terminate() in a callback did not return"
    p.join()


def test_jobs_one_after_another_reuse_their_threads(pool):
    """A job's results are handed out on a helper thread that the next job
    reuses (starting a thread costs a short job a good part of its time), and
    a helper that served callbacks does not act as a callback's thread after."""
    threads = []
    for n in range(8):
        result = pool.map_async(work.square, [n], callback=lambda _: threads.append(
            (threading.current_thread(), jobd._job.in_collector())))
        assert result.get(10) == [n * n]
        deadline = time.monotonic() + 5  # until its helper waits for work again
        while threads[-1][0] not in [h._thread for h in jobd._job._spare]:
            assert time.monotonic() < deadline, "the job's helper thread did not wait for more"
            time.sleep(0.001)
    assert len(threads) == 8 and all(collector for _, collector in threads)
    distinct = {id(thread) for thread, _ in threads}  # the threads are held: ids stay theirs
    assert len(distinct) == 1, f"{len(distinct)} threads for 8 jobs run one after another"
    assert not jobd._job.in_collector()
    reused = []
    done = threading.Event()
    helper = jobd._job.in_helper(jobd._job.Work(
        lambda: (reused.append(jobd._job.in_collector()), done.set()), (), "test"))
    assert done.wait(5) and helper.join(5) and reused == [False]


def test_a_map_in_a_callback_runs_and_leaves_it_a_callback(pool):
    """map() collects its results in the calling thread: in a callback, that
    is the callback's collector thread, which stays one after the map (its
    calls never wait for room: its own results are what would make room)."""
    seen = []
    done = threading.Event()

    def callback(_):
        seen.append(pool.map(work.square, [3, 4]))
        seen.append(jobd._job.in_collector())
        done.set()
    pool.apply_async(work.square, (2,), callback=callback)
    assert done.wait(10) and seen == [[9, 16], True]


def test_join_after_close_does_not_wait_for_an_unread_imap(jobd_server):
    p = jobd.Pool()
    results = p.imap(work.square, range(20000))
    assert next(results) == 0
    p.close()
    p.join()  # returns once the job ended, however little of it was read
    assert sum(1 for _ in results) == 19999


def assert_child_exits_cleanly(child, doing):
    """Waits up to 10 s for the forked `child` to exit 0; kills it and fails
    the test if it hangs (`doing`: what it hung on)."""
    import os
    deadline = time.monotonic() + 10
    while (done := os.waitpid(child, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if done == (0, 0):
        os.kill(child, 9)
        os.waitpid(child, 0)
        pytest.fail(f"the child hung {doing}")
    assert os.WIFEXITED(done[1]) and os.WEXITSTATUS(done[1]) == 0, f"child status {done[1]}"


def test_a_forked_child_that_drops_its_copy_of_a_pool_exits(pool):
    """A child forked after a map holds copies of the connection, its thread
    and ZeroMQ's, which are the parent's: dropping them must not wait for
    threads the child does not have. The child can make a Pool of its own;
    the parent's pool goes on."""
    import gc
    import os
    assert pool.map(work.square, [2, 3]) == [4, 9]
    child = os.fork()
    if child == 0:
        code = 1
        try:
            pool._idle.clear()  # the connections kept for the next job
            gc.collect()
            with jobd.Pool() as own:
                code = 0 if own.map(work.square, [3]) == [9] else 2
        finally:
            os._exit(code)
    assert_child_exits_cleanly(child, "dropping its copy of the pool's connection")
    assert pool.map(work.square, [4]) == [16]


def test_a_forked_child_leaves_its_parents_jobs_alone(jobd_server):
    """A child forked while an Executor's call runs, exiting as Python does
    (jobd's exit handler, then garbage collection), neither cancels the
    parent's job nor waits for it. (Only jobd's handler runs here: the test
    process's others, pytest's, are not the child's to run.)"""
    import gc
    import os

    from jobd import _job
    with jobd.Executor() as executor:
        future = executor.submit(work.sleep, 1)
        time.sleep(0.2)  # the call is running
        child = os.fork()
        if child == 0:
            code = 1
            try:
                _job._end_runs()
                del executor
                gc.collect()
                code = 0
            finally:
                os._exit(code)
        assert_child_exits_cleanly(child, "on its parent's job")
        assert future.result(timeout=10) == 1, "the parent's call was cancelled"
