#!/usr/bin/python3
"""The cluster benchmarks, on the real 2-node Slurm cluster that
tests/cluster/slurm_cluster.sh starts on this host (root; Debian's slurm-wlm,
munge and, for the comparison, python3-distributed), each side measured in
the same run:

  scaling    400 items that sleep 50 ms, and 400 of 10 ms, on both nodes
             (2 workers each): time against the ideal, items x time / workers
             (targets: >= 0.9 of ideal at 50 ms, >= 0.8 at 10 ms); the same
             with dask.distributed for information
  overhead   trivial items, default settings on each side: jobd's items/s
             (jobctl --cluster-file map identity, from outside the
             allocation) against dask.distributed's client.map (a scheduler
             here, a worker per node started by srun) (target: >= 30x)

  /usr/bin/python3 bench/cluster_bench.py [--build-dir build] [--items N]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "tests", "cluster", "slurm_cluster.sh")
WORKERS_PER_NODE = 2
NODES = 2


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    sys.exit(f"cluster_bench: {what} within {seconds} s")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def timed(command, stdin_text):
    start = time.perf_counter()
    done = subprocess.run(command, input=stdin_text, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"cluster_bench: {' '.join(command[:4])} failed: {done.stderr[-2000:]}")
    return seconds, done.stdout


def jobd_side(build, work, env, items):
    """Scaling and overhead through a head and a node that srun started."""
    config = os.path.join(work, "jobd.yaml")
    with open(config, "w") as f:
        f.write("pools:\n  cpu:\n    workers: auto\n")
    cluster = os.path.join(work, "cluster")
    srun = subprocess.Popen(
        ["srun", "-N2", "--ntasks-per-node=1", f"--cpus-per-task={WORKERS_PER_NODE}",
         "--export=ALL", f"--output={work}/rank%t.log", os.path.join(build, "bin", "jobd"),
         "--slurm", "--config", config, "--cluster-file", cluster, "--listen",
         "tcp://127.0.0.1:0"], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "node n2 (" in read(f"{work}/rank0.log"), 30, "the node n2 did not join")
        jobctl = [os.path.join(build, "bin", "jobctl"), "--cluster-file", cluster]
        out = {}
        for ms in (50, 10):
            best = min(timed(jobctl + ["map", "sleep"], f"{ms}\n" * 400)[0] for _ in range(3))
            out[f"jobd {ms} ms"] = best
        lines = "".join(f"{i}\n" for i in range(items))
        seconds, result = min(timed(jobctl + ["map", "identity"], lines) for _ in range(3))
        assert result == lines, "jobd's results differ from the items"
        out["jobd overhead"] = seconds
        subprocess.run(jobctl + ["shutdown"], capture_output=True)
        srun.wait(timeout=30)
        return out
    finally:
        if srun.poll() is None:
            srun.kill()


DASK_CLIENT = """
import sys, time
from distributed import Client
def sleep(ms):
    time.sleep(ms / 1000)
    return ms
def identity(x):
    return x
client = Client(sys.argv[1])
client.wait_for_workers(%d)
out = {}
for ms in (50, 10):
    best = None
    for _ in range(3):
        start = time.perf_counter()
        client.gather(client.map(sleep, [ms] * 400, pure=False))
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    out[f"dask {ms} ms"] = best
items = list(range(%d))
best = None
for _ in range(3):
    start = time.perf_counter()
    assert client.gather(client.map(identity, items, pure=False)) == items
    seconds = time.perf_counter() - start
    best = seconds if best is None else min(best, seconds)
out["dask overhead"] = best
print(repr(out))
client.shutdown()
"""


def dask_side(work, env, items):
    """The same with dask.distributed: a scheduler here, a worker per node."""
    scheduler = subprocess.Popen(["dask-scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        address = None
        for line in scheduler.stderr:
            found = re.search(r"Scheduler at:\s+(tcp://\S+)", line)
            if found:
                address = found[1]
                break
        if address is None:
            sys.exit("cluster_bench: dask-scheduler did not start")
        workers = subprocess.Popen(
            ["srun", "-N2", "--ntasks-per-node=1", f"--cpus-per-task={WORKERS_PER_NODE}",
             "--export=ALL", f"--output={work}/dask%t.log", "dask-worker", address,
             "--nworkers", "1", "--nthreads", str(WORKERS_PER_NODE), "--no-dashboard"],
            env=env, stderr=subprocess.DEVNULL)
        try:
            client = subprocess.run(
                [sys.executable, "-c", DASK_CLIENT % (NODES, items), address],
                capture_output=True, text=True, env=env, timeout=600)
            if client.returncode != 0:
                sys.exit(f"cluster_bench: the dask client failed: {client.stderr[-2000:]}")
            return eval(client.stdout.strip().splitlines()[-1])
        finally:
            workers.terminate()
            workers.wait(timeout=30)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--items", type=int, default=5000,
                        help="trivial items of the overhead row (default 5000)")
    args = parser.parse_args()
    if os.getuid() != 0:
        sys.exit("cluster_bench: run as root (slurmd must)")
    for program in ("srun", "dask-scheduler", "dask-worker"):
        if shutil.which(program) is None:
            sys.exit(f"cluster_bench: {program} is missing: apt-get install slurm-wlm munge "
                     "python3-distributed")
    build = os.path.abspath(args.build_dir)
    work = tempfile.mkdtemp(prefix="jobd-cluster-bench-")
    os.chmod(work, 0o700)
    env = dict(os.environ, XDG_RUNTIME_DIR=os.path.join(work, "run"))
    os.mkdir(env["XDG_RUNTIME_DIR"], 0o700)
    up = subprocess.run(["bash", HARNESS, "up", os.path.join(work, "slurm")], capture_output=True,
                        text=True)
    if up.returncode != 0:
        sys.exit(f"cluster_bench: the Slurm cluster did not start: {up.stderr}")
    env["SLURM_CONF"] = os.path.join(work, "slurm", "slurm.conf")
    try:
        best = jobd_side(build, work, env, args.items)
        best.update(dask_side(work, env, args.items))
    finally:
        subprocess.run(["bash", HARNESS, "down", os.path.join(work, "slurm")])
        shutil.rmtree(work, ignore_errors=True)

    workers = NODES * WORKERS_PER_NODE
    rows = [("benchmark", "jobd", "dask.distributed", "result", "target", "")]
    for ms, target in ((50, 0.9), (10, 0.8)):
        ideal = 400 * ms / 1000 / workers
        ours, theirs = ideal / best[f"jobd {ms} ms"], ideal / best[f"dask {ms} ms"]
        rows.append((f"scaling/{ms}ms", f"{best[f'jobd {ms} ms']:.3f} s",
                     f"{best[f'dask {ms} ms']:.3f} s", f"{ours:.2f} of ideal ({theirs:.2f})",
                     f">= {target}", "PASS" if ours >= target else "FAIL"))
    ours, theirs = args.items / best["jobd overhead"], args.items / best["dask overhead"]
    rows.append(("overhead", f"{ours:,.0f} items/s", f"{theirs:,.0f} items/s",
                 f"{ours / theirs:.1f}x", ">= 30x", "PASS" if ours / theirs >= 30 else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"2 Slurm nodes on this host, {WORKERS_PER_NODE} workers each; best of 3")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


if __name__ == "__main__":
    main()
