"""jobd.Executor against concurrent.futures' interface."""

import concurrent.futures
import threading
import time

import pytest

import jobd
import work


def test_submit_and_futures(jobd_server):
    with jobd.Executor() as executor:
        futures = [executor.submit(work.square, i) for i in range(200)]
        assert [f.result(10) for f in futures] == [i * i for i in range(200)]
        assert executor.submit(work.add, 1, b=2).result(10) == 3
        assert executor.submit(lambda: "by value").result(10) == "by value"
    jobd_server.wait_idle()


def test_as_completed_and_wait(jobd_server):
    with jobd.Executor() as executor:
        slow = executor.submit(work.sleep, 0.8)
        quick = executor.submit(work.sleep, 0.01)
        assert next(concurrent.futures.as_completed([slow, quick], timeout=10)) is quick
        done, not_done = concurrent.futures.wait([slow, quick], timeout=10)
        assert done == {slow, quick} and not not_done
        first = concurrent.futures.wait([executor.submit(work.sleep, 5),
                                         executor.submit(work.sleep, 0.01)],
                                        return_when=concurrent.futures.FIRST_COMPLETED)
        assert len(first.done) == 1
        executor.shutdown(wait=False, cancel_futures=True)


def test_exceptions_reach_the_future(jobd_server):
    with jobd.Executor() as executor:
        future = executor.submit(work.divide, 1, 0)
        with pytest.raises(ZeroDivisionError):
            future.result(10)
        assert isinstance(future.exception(), ZeroDivisionError)
        assert "divide" in str(future.exception().__cause__)  # the remote traceback


def test_map_in_order_with_timeout(jobd_server):
    with jobd.Executor(max_workers=2) as executor:
        assert list(executor.map(work.add, range(50), range(50))) == [2 * i for i in range(50)]
        assert list(executor.map(work.square, range(20), chunksize=4)) == [
            i * i for i in range(20)]
        results = executor.map(work.sleep, [0.01, 3], timeout=0.5)
        assert next(results) == 0.01
        with pytest.raises(concurrent.futures.TimeoutError):
            next(results)
        failing = executor.map(work.divide, [1, 1], [1, 0])
        assert next(failing) == 1.0
        with pytest.raises(ZeroDivisionError):
            next(failing)
    jobd_server.wait_idle()


def test_shutdown(jobd_server):
    executor = jobd.Executor()
    futures = [executor.submit(work.sleep, 0.1) for _ in range(4)]
    executor.shutdown(wait=True)
    assert all(f.done() and f.result() == 0.1 for f in futures)
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(work.square, 1)

    executor = jobd.Executor()
    waiting = [executor.submit(work.sleep, 2) for _ in range(6)]
    start = time.monotonic()
    executor.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - start < 2
    assert all(f.cancelled() for f in waiting)
    jobd_server.wait_idle()


def test_many_submits_travel_together_in_one_job(jobd_server):
    def jobs_started():
        with open(jobd_server.log) as log:
            return sum("python (jobd.Pool)" in line for line in log)
    before = jobs_started()
    with jobd.Executor() as executor:
        futures = [executor.submit(work.square, i) for i in range(5000)]
        assert [f.result(30) for f in futures] == [i * i for i in range(5000)]
    # One job streams every call: submit() only queues (the benchmark measures the speed).
    assert jobs_started() - before == 1


def test_submitting_from_callbacks_neither_deadlocks_nor_mixes_results(jobd_server):
    executor = jobd.Executor()
    done = threading.Event()
    finished = []

    def again(future):
        if future.result() % 2 == 0:
            executor.submit(work.square, 1).add_done_callback(count)
        count(future)

    def count(_):
        finished.append(1)
        if len(finished) == 30000:
            done.set()

    futures = [executor.submit(work.square, i) for i in range(20000)]
    for future in futures:
        future.add_done_callback(again)
    assert done.wait(120), f"{len(finished)} of 30000 calls finished"
    # Submits from two threads at once: each future got its own call's result.
    assert all(future.result() == i * i for i, future in enumerate(futures))
    executor.shutdown()
