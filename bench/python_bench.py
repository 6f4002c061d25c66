#!/usr/bin/env python3
"""The jobd.Pool benchmarks of bench.py, each run side by side with what a
Python user would use instead, in one process; prints one JSON object of
seconds per side.

  python_bench.py map          map(identity, range(100000)) with chunksize=1 and
                               with the default chunksize: jobd.Pool against
                               multiprocessing.Pool(cores)
  python_bench.py cpu          a pure-Python CPU-bound function over 64 items:
                               jobd.Pool against a serial loop (and, for
                               information, multiprocessing.Pool(cores))
  python_bench.py first jobd|fork|spawn|forkserver
                               as a new program: the time from creating the pool
                               to the first map of one item's result (and, apart,
                               importing the pool's module)
  python_bench.py arrays       64 numpy arrays of 4 MiB, map(identity, arrays):
                               jobd.Pool against multiprocessing.Pool(cores)
  python_bench.py submit       10,000 submits of a trivial function, then every
                               result: jobd.Executor against ProcessPoolExecutor
  python_bench.py urls         32 URLs of a local server answering in 0.3 s:
                               jobd.Pool(pool="io") against
                               multiprocessing.dummy.Pool(16) and a serial loop

jobd is found at $JOBD_SOCKET; the package on PYTHONPATH.
"""
import json
import os
import sys
import time

import pool_work

CORES = os.cpu_count()
MAP_PAIRS = 15


def timed(call):
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def bench_map():
    """chunksize=1: one map each. The default chunksize's map takes
    milliseconds, on a machine whose speed drifts by tens of percent within
    seconds: MAP_PAIRS pairs of maps, the sides taking turns to go first;
    each pair's seconds are reported (bench.py takes the median of their
    ratios), and the best of each side."""
    import multiprocessing

    import jobd
    items = range(100_000)
    expected = list(items)
    out, pairs = {}, []
    with jobd.Pool() as ours, multiprocessing.Pool(CORES) as theirs:
        sides = (("jobd", ours), ("multiprocessing", theirs))
        for _, pool in sides:
            pool.map(pool_work.identity, range(100))  # warm: imports done
        for chunksize, runs in ((1, 1), (None, MAP_PAIRS)):
            for run in range(runs):
                pair = {}
                for name, pool in sides[::1 if run % 2 == 0 else -1]:
                    seconds, result = timed(lambda: pool.map(pool_work.identity, items, chunksize))
                    assert result == expected, name
                    del result  # freed outside the timed map, as the other side's
                    key = f"{name} chunksize={chunksize}"
                    out[key] = min(out.get(key, seconds), seconds)
                    pair[name] = seconds
                if chunksize is None:
                    pairs.append([pair["jobd"], pair["multiprocessing"]])
    out["pairs chunksize=None"] = pairs
    return out


def bench_cpu():
    """The serial loop runs in two halves, before and after the pools' maps,
    so that this machine's speed drifting during the run weighs on both sides
    alike."""
    import multiprocessing

    import jobd
    items = [60_000 + i for i in range(64)]
    with jobd.Pool() as ours, multiprocessing.Pool(CORES) as theirs:
        ours.map(pool_work.busy, items[:4])  # warm
        theirs.map(pool_work.busy, items[:4])
        first_half, expected = timed(lambda: [pool_work.busy(n) for n in items[:32]])
        parallel, result = timed(lambda: ours.map(pool_work.busy, items))
        reference, theirs_result = timed(lambda: theirs.map(pool_work.busy, items))
        second_half, rest = timed(lambda: [pool_work.busy(n) for n in items[32:]])
    assert result == theirs_result == expected + rest
    return {"jobd": parallel, "multiprocessing": reference, "serial": first_half + second_half,
            "cores": CORES}


def bench_first(side):
    """Creating the pool and mapping one item, timed after the imports (a
    script imports its modules first); the import is reported apart."""
    start = time.perf_counter()
    if side == "jobd":
        import jobd
        imported = time.perf_counter()
        with jobd.Pool() as pool:
            result = pool.map(pool_work.identity, ["x"])
    else:
        import multiprocessing
        imported = time.perf_counter()
        with multiprocessing.get_context(side).Pool(CORES) as pool:
            result = pool.map(pool_work.identity, ["x"])
    assert result == ["x"]
    return {side: time.perf_counter() - imported, f"import {side}": imported - start}


def bench_arrays():
    import multiprocessing

    import numpy

    import jobd
    arrays = [numpy.full(512 * 1024, i, dtype=numpy.float64) for i in range(64)]
    out = {}
    with jobd.Pool() as ours, multiprocessing.Pool(CORES) as theirs:
        for name, pool in (("jobd", ours), ("multiprocessing", theirs)):
            pool.map(pool_work.identity, arrays[:2])  # warm
            seconds, result = timed(lambda: pool.map(pool_work.identity, arrays))
            assert all((a == b).all() for a, b in zip(arrays, result)), name
            out[name] = seconds
    return out


def bench_submit():
    import concurrent.futures

    import jobd
    out = {}
    for name, executor in (("jobd", jobd.Executor()),
                           ("ProcessPoolExecutor", concurrent.futures.ProcessPoolExecutor(CORES))):
        with executor:
            executor.submit(pool_work.identity, 0).result()  # started, imports done

            def run():
                futures = [executor.submit(pool_work.identity, i) for i in range(10_000)]
                return [f.result() for f in futures]
            seconds, result = timed(run)
            assert result == list(range(10_000)), name
            out[name] = seconds
    return out


SLOW_SERVER = """
import http.server, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.3)
        body = b"x" * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.request_queue_size = 128  # no connection waits to be accepted
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
server.daemon_threads = True
print(server.server_port, flush=True)
server.serve_forever()
"""


def bench_urls():
    import multiprocessing.dummy
    import subprocess

    import jobd

    # In a process of its own: its threads must not share a GIL with the
    # thread pool measured.
    server = subprocess.Popen([sys.executable, "-c", SLOW_SERVER], stdout=subprocess.PIPE,
                              text=True)
    try:
        port = int(server.stdout.readline())
        urls = [f"http://127.0.0.1:{port}/{i}" for i in range(32)]
        out = {}
        with jobd.Pool(pool="io") as pool:
            out["jobd first"], result = timed(lambda: pool.map(pool_work.fetch, urls))
            out["jobd"], result = timed(lambda: pool.map(pool_work.fetch, urls))
        assert result == [1000] * 32
        with multiprocessing.dummy.Pool(16) as threads:
            out["multiprocessing.dummy"], result = timed(lambda: threads.map(pool_work.fetch,
                                                                             urls))
        assert result == [1000] * 32
        out["serial"], _ = timed(lambda: [pool_work.fetch(url) for url in urls])
    finally:
        server.kill()
        server.wait()
    return out


if __name__ == "__main__":
    case = sys.argv[1]
    benchmarks = {"map": bench_map, "cpu": bench_cpu, "arrays": bench_arrays,
                  "submit": bench_submit, "urls": bench_urls}
    print(json.dumps(bench_first(sys.argv[2]) if case == "first" else benchmarks[case]()))
