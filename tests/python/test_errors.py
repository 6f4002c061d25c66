"""Failures as Python users expect them, against a real jobd."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import jobd
import work
from conftest import BUILD, HERE


@pytest.fixture
def pool(jobd_server):
    with jobd.Pool() as p:
        yield p
    jobd_server.wait_idle()


def test_exception_type_message_and_remote_traceback(pool):
    with pytest.raises(ZeroDivisionError, match="division by zero") as raised:
        pool.starmap(work.divide, [(1, 1), (1, 0)], chunksize=1)
    cause = raised.value.__cause__
    assert isinstance(cause, jobd.RemoteTraceback)
    assert "work.py" in str(cause) and "in divide" in str(cause) and "return a / b" in str(cause)
    # The same inside a chunk of many items.
    with pytest.raises(ZeroDivisionError):
        pool.starmap(work.divide, [(1, 1)] * 500 + [(1, 0)])


def test_unpicklable_exception_is_a_remote_error(pool):
    with pytest.raises(jobd.RemoteError, match="Unpicklable: 1 and 2"):
        pool.map(work.raise_unpicklable, [1])


def test_unpicklable_result_fails_that_item(pool):
    with pytest.raises(TypeError, match="cannot be pickled"):
        pool.map(work.return_lock, [1])
    results = pool.imap(work.return_lock, [1])
    with pytest.raises(TypeError, match="lock"):
        next(results)


def test_a_result_that_cannot_be_unpickled_fails_that_item(pool):
    unreadable = "the result of item {} cannot be unpickled here: ValueError: refused on purpose"
    with pytest.raises(jobd.RemoteError, match=unreadable.format(2)):
        pool.map(work.unreadable_if, [0, 1, 0], chunksize=1)
    with pytest.raises(jobd.RemoteError, match=unreadable.format(1)):  # the chunk's
        pool.map(work.unreadable_if, [0, 1, 0], chunksize=3)
    outcomes = []
    results = pool.imap_unordered(work.unreadable_if, [0, 1, 0], chunksize=1)
    for _ in range(3):
        try:
            outcomes.append(next(results))
        except jobd.RemoteError as error:
            outcomes.append(str(error))
    assert sorted(outcomes, key=str) == [0, 0, unreadable.format(2)]


def test_unpicklable_argument_or_function_fails_at_the_call(pool):
    with pytest.raises(TypeError, match="cannot send the arguments of item 2.*cannot be pickled"):
        pool.map(work.echo, [1, threading.Lock()], chunksize=1)
    lock = threading.Lock()
    with pytest.raises(TypeError, match="cannot send the function"):
        pool.map(lambda x: lock, [1])
    with pytest.raises(TypeError, match="not callable"):
        pool.map(42, [1])


def test_unimportable_module_names_it(pool, tmp_path, monkeypatch):
    module = tmp_path / "vanishing_module.py"
    module.write_text("def f(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import vanishing_module
    module.unlink()
    with jobd.Pool() as p:  # the new sys.path: a fresh interpreter
        with pytest.raises(ModuleNotFoundError, match="vanishing_module"):
            p.map(vanishing_module.f, [1])


def test_a_killed_interpreter_costs_a_retry(pool, tmp_path):
    marker = str(tmp_path / "killed")
    assert pool.map(work.kill_once, [marker], chunksize=1) == ["survived"]
    assert os.path.exists(marker)


def test_an_item_that_keeps_killing_raises_worker_lost(pool):
    start = time.monotonic()
    with pytest.raises(jobd.WorkerLost, match="SIGKILL"):
        pool.map(work.kill_always, [1])
    assert time.monotonic() - start < 20
    # The pool goes on.
    assert pool.map(work.square, [3]) == [9]


def test_no_jobd_is_a_clear_error(jobd_server, tmp_path, monkeypatch):
    monkeypatch.setenv("JOBD_SOCKET", f"ipc://{tmp_path}/nobody/jobd.sock")
    monkeypatch.setenv("JOBD_AUTOSTART", "0")
    with pytest.raises(jobd.JobdError, match="no jobd is running.*JOBD_AUTOSTART=0"):
        jobd.Pool()


def run_program(source, env=None, **kwargs):
    environment = dict(os.environ, PYTHONPATH=os.path.join(BUILD, "python") + os.pathsep + HERE,
                       **(env or {}))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(source)], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


def test_ctrl_c_cancels_the_job(jobd_server):
    program = run_program("""
        import time, jobd, work
        pool = jobd.Pool()
        print("mapping", flush=True)
        try:
            pool.map(work.sleep, [30] * 4, chunksize=1)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            time.sleep(10)  # alive: jobd cannot have noticed that this program ended
        """)
    assert program.stdout.readline() == "mapping\n"
    time.sleep(1)
    assert jobd_server.status().get("jobs"), "the job did not start"
    program.send_signal(signal.SIGINT)
    assert program.stdout.readline() == "interrupted\n"
    jobd_server.wait_idle(timeout=3)
    program.kill()
    program.wait()


def test_ctrl_c_goes_up_at_once_while_jobd_does_not_answer(jobd_server):
    """map() hands its results out in the caller's thread; Ctrl-C there
    cancels the job and is raised at once, even while jobd has not answered
    the submission yet (here: stopped), not after the client's wait for it."""
    program = run_program("""
        import time, jobd, work
        pool = jobd.Pool()
        pool.map(work.square, [1])
        print("ready", flush=True)
        input()  # jobd is stopped now
        start = time.monotonic()
        try:
            pool.map(work.square, [1, 2])
        except KeyboardInterrupt:
            print(f"interrupted after {time.monotonic() - start:.1f} s", flush=True)
        """, stdin=subprocess.PIPE)
    daemon = jobd_server.status()["pid"]
    try:
        assert program.stdout.readline() == "ready\n"
        os.kill(daemon, signal.SIGSTOP)
        program.stdin.write("\n")
        program.stdin.flush()
        time.sleep(1)
        program.send_signal(signal.SIGINT)
        line = program.stdout.readline()
        assert line.startswith("interrupted after "), (line, program.stderr.read())
        assert float(line.split()[2]) < 5, f"Ctrl-C came 1 s into the map: {line}"
    finally:
        os.kill(daemon, signal.SIGCONT)
        program.kill()
        program.wait()
    jobd_server.wait_idle()


def test_a_client_gone_before_its_job_is_accepted_costs_jobd_nothing(jobd_server):
    """A program that submits a job and exits while jobd is busy (here:
    stopped) is gone when jobd reads its submission: jobd drops the job and
    serves on. (It used to end the job as the acceptance found no client,
    then add the submission's items to the freed job.)"""
    daemon = jobd_server.status()["pid"]
    for _ in range(5):
        program = run_program("""
            import os, time, jobd, work
            pool = jobd.Pool()
            print("ready", flush=True)
            input()  # jobd is stopped now
            pool.map_async(work.square, range(100))
            time.sleep(0.3)  # the submission, items and all, is in the socket
            os._exit(0)
            """, stdin=subprocess.PIPE)
        assert program.stdout.readline() == "ready\n"
        os.kill(daemon, signal.SIGSTOP)
        try:
            program.communicate("\n", timeout=30)
        finally:
            os.kill(daemon, signal.SIGCONT)
    jobd_server.wait_idle()
    with jobd.Pool() as pool:
        assert pool.map(work.square, range(10)) == [x * x for x in range(10)]


def test_cancelling_a_job_whose_client_died_costs_jobd_nothing(jobd_server):
    """`jobctl cancel` of a job whose client was killed before jobd sent it
    anything: telling that client fails, which ends its jobs, this one too;
    jobd cancels it once and serves on. (jobd may also have seen the client's
    pid gone first and cancelled the job itself: then there is none to cancel.)"""
    client = subprocess.Popen([os.path.join(BUILD, "bin", "jobctl"), "--socket",
                               jobd_server.endpoint, "map", "sleep"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    client.stdin.write("30\n30\n")
    client.stdin.flush()
    deadline = time.monotonic() + 10
    while not (jobs := jobd_server.status().get("jobs")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jobs, "the job did not start"
    client.kill()
    client.wait()
    cancelled = jobd_server.jobctl("cancel", str(jobs[0]["id"]))
    assert cancelled.returncode == 0 or "is running" in cancelled.stderr, cancelled.stderr
    jobd_server.wait_idle()
    with jobd.Pool() as pool:
        assert pool.map(work.square, range(10)) == [x * x for x in range(10)]


def test_a_signal_handler_that_terminates_the_pool_during_map(jobd_server):
    """A handler (on the main thread, where map() hands its results out) that
    terminates the Pool while map() still pickles its items: terminate()
    returns, and map() ends with the handler's exception."""
    program = run_program("""
        import signal, time, jobd, work

        class SlowToPickle:
            def __reduce__(self):
                time.sleep(0.002)
                return int, (1,)

        pool = jobd.Pool()

        def stop(signum, frame):
            pool.terminate()
            print("terminated", flush=True)
            raise SystemExit(3)
        signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, 0.2)  # while the first 512 items are pickled
        pool.map(work.square, [SlowToPickle()] * 2000, chunksize=1)
        """)
    try:
        out, err = program.communicate(timeout=30)
    finally:
        program.kill()
    assert out == "terminated\n" and program.returncode == 3, (out, err)
    jobd_server.wait_idle()


def test_autostart_when_no_jobd_runs(tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"JOBD_SOCKET": f"ipc://{runtime}/jobd.sock", "JOBD_AUTOSTART": "1"}
    source = """
        import jobd, work
        with jobd.Pool() as pool:
            print(pool.map(work.square, [1, 2, 3]))
        """
    try:
        first = run_program(source, env)
        out, err = first.communicate(timeout=60)
        assert out == "[1, 4, 9]\n", err
        assert "no jobd was running, so started one" in err and "JOBD_AUTOSTART=0" in err
        second = run_program(source, env)
        out, err = second.communicate(timeout=60)
        assert out == "[1, 4, 9]\n" and "started" not in err, err
        status = subprocess.run([os.path.join(BUILD, "bin", "jobctl"), "--socket",
                                 env["JOBD_SOCKET"], "status", "--json"], capture_output=True,
                                text=True)
        pid = int(__import__("json").loads(status.stdout)["pid"])
        with open(f"/proc/{pid}/cmdline") as f:
            assert "--idle-exit\x00600" in f.read()
    finally:
        subprocess.run([os.path.join(BUILD, "bin", "jobctl"), "--socket", env["JOBD_SOCKET"],
                        "shutdown"], capture_output=True)


def test_idle_exit_stops_a_jobd_without_jobs(tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    endpoint = f"ipc://{runtime}/jobd.sock"
    log = tmp_path / "jobd.log"
    subprocess.run([os.path.join(BUILD, "bin", "jobd"), "--listen", endpoint, "--idle-exit",
                    "1", "--detach", "--log-file", str(log), "--pid-file",
                    str(tmp_path / "jobd.pid")], check=True, capture_output=True)
    pid = int((tmp_path / "jobd.pid").read_text())
    with jobd.Pool(socket=endpoint) as pool:  # a job resets the idle time
        time.sleep(0.6)
        assert pool.map(work.sleep, [0.8]) == [0.8]
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}"), "jobd still runs 10 s after its last job"
    assert "no job for 1 s (idle_exit)" in log.read_text()
    assert not os.path.exists(runtime / "jobd.sock")


def test_exiting_with_a_job_running_ends_it_cleanly(jobd_server):
    for _ in range(3):
        program = run_program("""
            import jobd, work
            pool = jobd.Pool()
            pending = pool.map_async(work.sleep, [0.2] * 200, chunksize=1)
            it = pool.imap(work.square, range(100000))
            next(it)
            """)
        out, err = program.communicate(timeout=60)
        assert program.returncode == 0, err
        assert "terminate called" not in err
    jobd_server.wait_idle()


def test_exiting_right_after_terminate_does_not_abort(jobd_server):
    """`with` ends the Pool (terminate()) as a helper thread still waits in
    the binding to put items the job no longer takes; the program then exits.
    A thread that came back from that wait as the interpreter finalized made
    the program abort (std::terminate, exit status 134), one run in ten."""
    for _ in range(30):
        program = run_program("""
            import jobd, work
            with jobd.Pool() as pool:
                for square in pool.imap(work.square, list(range(300000))):
                    break
            """)
        out, err = program.communicate(timeout=60)
        assert (program.returncode, err) == (0, "")
    jobd_server.wait_idle()


def test_terminate_while_the_caller_holds_the_imap_lock_returns(jobd_server):
    """A signal handler runs where it lands: in next(), as it holds the
    iterator's lock. One that terminates the Pool waits for the job's end,
    so the job's collector must not wait for that lock (it did: a hang),
    whether it was handing results over or waiting for room for more."""
    program = run_program("""
        import faulthandler, time
        import jobd, work
        faulthandler.dump_traceback_later(30, exit=True)  # a hang shows where
        for pause in (0, 0.5):  # (0.5 s: the collector has filled the room ahead)
            pool = jobd.Pool()
            squares = pool.imap(work.square, range(100000))
            next(squares)
            time.sleep(pause)
            with squares._cond:  # as next() holds it when the handler runs
                pool.terminate()
            print("returned")
        """)
    try:
        out, err = program.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        program.kill()
        raise
    assert (program.returncode, out) == (0, "returned\nreturned\n"), err
    jobd_server.wait_idle()


def test_a_job_that_fails_to_start_its_feeder_leaves_the_pool_joinable(pool, monkeypatch):
    """An error in the caller's thread once the collector runs (Ctrl-C there,
    or a thread that cannot start) goes up and ends the job: the Pool still
    closes and joins."""
    from jobd import _job
    start_helper = _job.in_helper

    def no_feeder(work):
        if work.name == "jobd-items":
            raise RuntimeError("can't start new thread")
        return start_helper(work)
    monkeypatch.setattr(_job, "in_helper", no_feeder)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        pool.imap(work.square, iter(range(10)))
    monkeypatch.setattr(_job, "in_helper", start_helper)
    assert pool.map(work.square, range(3)) == [0, 1, 4]
    pool.close()
    joined = threading.Thread(target=pool.join, daemon=True)
    joined.start()
    joined.join(10)
    assert not joined.is_alive(), "join() waits for a job that never ends"


class Interrupting:
    """Pickling it is interrupted, as by Ctrl-C."""

    def __reduce__(self):
        raise KeyboardInterrupt


def test_ctrl_c_while_the_items_are_pickled_goes_up_at_once(pool):
    """In map_async and imap too, not later at get() or next(): the job is
    cancelled, and the Pool goes on."""
    with pytest.raises(KeyboardInterrupt):
        pool.map_async(work.square, [1, Interrupting()])
    with pytest.raises(KeyboardInterrupt):
        pool.imap(work.square, [1, Interrupting()])
    assert pool.map(work.square, range(3)) == [0, 1, 4]
