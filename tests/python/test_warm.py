"""Warm interpreters: kept between jobs and programs, never stale."""

import os
import sys
import time

import jobd
import work
from test_errors import run_program


def test_the_next_program_finds_the_interpreters_warm(jobd_server, tmp_path):
    source = """
        import jobd, work
        with jobd.Pool() as pool:
            print(sorted(set(pool.map(work.slow_pid, [0.05] * 20, chunksize=1))))
        """
    pids = []
    for _ in range(2):
        program = run_program(source, cwd=str(tmp_path))
        out, err = program.communicate(timeout=60)
        assert program.returncode == 0, err
        pids.append(eval(out))
    assert len(pids[0]) == 2 and pids[1] == pids[0], pids


def test_an_edited_module_is_never_served_stale(jobd_server, tmp_path, monkeypatch):
    module = tmp_path / "edited_module.py"
    module.write_text("def value(x):\n    return 'before'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import edited_module
    with jobd.Pool() as pool:
        assert set(pool.map(edited_module.value, range(20), chunksize=1)) == {"before"}
        module.write_text("def value(x):\n    return 'after'\n")
        later = time.time() + 2  # a new mtime even on a coarse clock
        os.utime(module, (later, later))
        assert set(pool.map(edited_module.value, range(20), chunksize=1)) == {"after"}
    del sys.modules["edited_module"]


def test_jobctl_python_and_pool_share_nothing_stale(jobd_server):
    # A str job and a pickled job in turn on the same interpreters.
    with jobd.Pool() as pool:
        assert pool.map(work.square, [4]) == [16]
    result = jobd_server.jobctl("map", "--python", "work:square", "not-a-number",
                                cwd=os.path.dirname(work.__file__))
    assert result.returncode != 0 and "can't multiply" in result.stderr
    with jobd.Pool() as pool:
        assert pool.map(work.square, [5]) == [25]
