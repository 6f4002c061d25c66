"""Large buffers: numpy arrays out of band, in shared memory, memory bounded."""

import os
import time

import numpy

import jobd
import work
from test_errors import run_program


def memory_of(array):
    """The object that holds an array's memory."""
    while isinstance(array, numpy.ndarray):
        array = array.base
    return array.obj if isinstance(array, memoryview) else array


def test_arrays_round_trip_writable(jobd_server):
    arrays = [numpy.full((256, 1024), i, dtype=numpy.float64) for i in range(8)]
    with jobd.Pool() as pool:
        doubled = pool.map(work.double_array, arrays, chunksize=1)
        assert all((d == 2 * a).all() and d.flags.writeable for a, d in zip(arrays, doubled))
        # Not copied out of shared memory: mapped copy-on-write, so a write
        # to one result changes nothing else.
        assert all(type(memory_of(d)).__name__ == "SharedBytes" for d in doubled)
        doubled[0][:] = -1
        assert all((d == 2 * a).all() for a, d in zip(arrays[1:], doubled[1:]))
        same = pool.map(work.identity_array, arrays)  # in chunks
        assert all((s == a).all() and s.dtype == a.dtype for a, s in zip(arrays, same))
        data = bytearray(range(256)) * 40000
        assert pool.map(work.echo, [data, bytes(data)]) == [data, bytes(data)]
    jobd_server.wait_idle()
    assert not interpreter_segments()


def test_a_gibibyte_of_arrays_with_the_client_memory_bounded(jobd_server):
    # 256 arrays of 4 MiB out and back, made and checked one by one: the
    # client holds a window of them, not all.
    program = run_program("""
        import numpy, jobd, work
        def arrays():
            for i in range(256):
                yield numpy.full(512 * 1024, i, dtype=numpy.float64)
        with jobd.Pool() as pool:
            for i, array in enumerate(pool.imap(work.double_array, arrays())):
                assert array.shape == (512 * 1024,) and array[0] == array[-1] == 2 * i, i
                count = i + 1
        with open("/proc/self/status") as status:
            peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
        print(count, peak // 1024)
        """)
    out, err = program.communicate(timeout=180)
    assert program.returncode == 0, err
    count, peak_mib = map(int, out.split())
    assert count == 256
    assert peak_mib < 700, f"the client peaked at {peak_mib} MiB moving 1 GiB each way"
    jobd_server.wait_idle()
    assert not interpreter_segments(), "interpreters left result segments behind"


def interpreter_segments():
    """Segments in /dev/shm made by a warm interpreter (results it hands over
    through shared memory): none may remain once their tasks are done."""
    left = []
    for name in os.listdir("/dev/shm"):
        parts = name.split("-")
        if len(parts) == 4 and parts[0] == "jobd" and parts[1] == str(os.getuid()):
            try:
                with open(f"/proc/{parts[2]}/cmdline", "rb") as f:
                    if b"jobd/_worker.py" in f.read():
                        left.append(name)
            except OSError:
                pass
    return left


def test_a_cancelled_job_leaves_no_result_segment(jobd_server):
    daemon = str(jobd_server.status()["pid"])
    before = set(os.listdir("/dev/shm"))
    for _ in range(10):  # the race it guards against: a result written, then the cancel
        with jobd.Pool() as pool:
            results = pool.imap(work.echo, [bytes(200_000)] * 64, chunksize=1)
            next(results)
        # Leaving the with block terminates: the job is cancelled mid-way.
    jobd_server.wait_idle()
    time.sleep(0.5)  # the workers stop their interpreters as the job goes
    # New segments made by this jobd's interpreters, live or stopped (other
    # tests' jobds, running meanwhile, have live segments of their own).
    workers = {str(w["pid"]) for pool in jobd_server.status()["pools"] for w in pool["workers"]}

    def ours(creator):
        try:
            with open(f"/proc/{creator}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[1] in workers
        except OSError:
            return True  # gone: stopped with the job
    left = [name for name in set(os.listdir("/dev/shm")) - before
            if name.startswith(f"jobd-{os.getuid()}-") and name.split("-")[2] != daemon
            and ours(name.split("-")[2])]
    assert not left, f"segments left behind: {left}"
