#!/usr/bin/python3
"""The cluster benchmarks. All but head-cpu run on the real 2-node Slurm
cluster that tests/cluster/slurm_cluster.sh starts on this host (root;
Debian's slurm-wlm, munge and, for the comparison, python3-distributed), each
side measured in the same run:

  scaling    400 items that sleep 50 ms, and 400 of 10 ms, on both nodes
             (2 workers each): time against the ideal, items x time / workers
             (targets: >= 0.9 of ideal at 50 ms, >= 0.8 at 10 ms); the same
             with dask.distributed for information
  overhead   trivial items, default settings on each side: jobd's items/s
             (jobctl --cluster-file map identity, from outside the
             allocation) against dask.distributed's client.map (a scheduler
             here, a worker per node started by srun) (target: >= 30x)
  payloads   64 items of 4 MiB there and back (identity): jobd's round trip
             against raw ZeroMQ over TCP with CurveZMQ (bench/curve_pair,
             target: >= 0.8x its speed) and against dask.distributed's
             (target: >= 4x); jobctl as from another host (TCP, as in every
             other row), and, for the payloads/*-head-host rows, on the
             head's host (its local socket)
  head-cpu   no Slurm: a head and 1, 2, 4, 8, 16 nodes (jobd join, 1 worker
             each) on this host map 1 ms items; the head's CPU time per item
             and what it implies: how many 64-core nodes one head core feeds
             with 1 ms items

  /usr/bin/python3 bench/cluster_bench.py [--build-dir build] [--items N]
                                          [--only ROW,...]
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


def timed(command, stdin_text, env=None):
    start = time.perf_counter()
    done = subprocess.run(command, input=stdin_text, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"cluster_bench: {' '.join(command[:4])} failed: {done.stderr[-2000:]}")
    return seconds, done.stdout


PAYLOAD_ITEMS, PAYLOAD_BYTES = 64, 4 << 20


def payload_lines():
    """64 lines of 4 MiB (newline included), each different."""
    return "".join(os.urandom(PAYLOAD_BYTES // 2).hex()[:PAYLOAD_BYTES - 1] + "\n"
                   for _ in range(PAYLOAD_ITEMS))


def jobd_side(build, work, env, items, rows):
    """The Slurm rows through a head and a node that srun started."""
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
        # Every node is this host, the head's: without this, jobctl would
        # take the head's local socket, where a login host's takes TCP.
        remote = dict(env, JOBD_CLUSTER_LOCAL="0")
        out = {}
        if "scaling" in rows:
            for ms in (50, 10):
                best = min(timed(jobctl + ["map", "sleep"], f"{ms}\n" * 400, remote)[0]
                           for _ in range(3))
                out[f"jobd {ms} ms"] = best
        checked = {"overhead": "".join(f"{i}\n" for i in range(items)) if "overhead" in rows else "",
                   "payloads": payload_lines() if "payloads" in rows else ""}
        for row, lines in checked.items():
            if not lines:
                continue
            # Files, as a shell's < and >: what is timed is jobctl's work, not a pipe's.
            items_path, results_path = f"{work}/{row}.in", f"{work}/{row}.out"
            with open(items_path, "w") as f:
                f.write(lines)
            places = {"": remote, " head-host": env} if row == "payloads" else {"": remote}
            for place, client_env in places.items():
                best = None
                for _ in range(3):
                    with open(items_path) as stdin, open(results_path, "w") as stdout:
                        start = time.perf_counter()
                        subprocess.run(jobctl + ["map", "identity"], stdin=stdin, stdout=stdout,
                                       check=True, env=client_env)
                        seconds = time.perf_counter() - start
                    best = seconds if best is None else min(best, seconds)
                    assert read(results_path) == lines, f"jobd's results differ ({row}{place})"
                out[f"jobd {row}{place}"] = best
        subprocess.run(jobctl + ["shutdown"], capture_output=True, env=remote)
        srun.wait(timeout=30)
        return out
    finally:
        if srun.poll() is None:
            srun.kill()


DASK_CLIENT = """
import os, sys, time
from distributed import Client
def sleep(ms):
    time.sleep(ms / 1000)
    return ms
def identity(x):
    return x
def best_of_3(items, function):
    best = None
    for _ in range(3):
        start = time.perf_counter()
        assert client.gather(client.map(function, items, pure=False)) == items
        seconds = time.perf_counter() - start
        best = seconds if best is None else min(best, seconds)
    return best
address, workers, items, payload_bytes, payload_items, rows = sys.argv[1:]
client = Client(address)
client.wait_for_workers(int(workers))
out = {}
if "scaling" in rows:
    for ms in (50, 10):
        out[f"dask {ms} ms"] = best_of_3([ms] * 400, sleep)
if "overhead" in rows:
    out["dask overhead"] = best_of_3(list(range(int(items))), identity)
if "payloads" in rows:
    payloads = [os.urandom(int(payload_bytes)) for _ in range(int(payload_items))]
    out["dask payloads"] = best_of_3(payloads, identity)
print(repr(out))
client.shutdown()
"""


def dask_side(work, env, items, rows):
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
                [sys.executable, "-c", DASK_CLIENT, address, str(NODES), str(items),
                 str(PAYLOAD_BYTES), str(PAYLOAD_ITEMS), ",".join(rows)],
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


def curve_pair(build):
    """The best round trip of the payloads over a raw CurveZMQ pair."""
    done = subprocess.run([os.path.join(build, "bin", "curve_pair"), str(PAYLOAD_ITEMS),
                           str(PAYLOAD_BYTES), "3"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"cluster_bench: curve_pair failed: {done.stderr}")
    return float(done.stdout)


HEAD_CPU_NODES = (1, 2, 4, 8, 16)
HEAD_CPU_ITEMS = 20000


def cpu_seconds(pid):
    """User and system CPU time of process `pid` so far."""
    fields = read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def head_cpu(build):
    """The head's CPU time per 1 ms item, as nodes are added (1 worker each)."""
    jobd, jobctl = os.path.join(build, "bin", "jobd"), os.path.join(build, "bin", "jobctl")
    out = {}
    for count in HEAD_CPU_NODES:
        work = tempfile.mkdtemp(prefix="jobd-head-cpu-")
        env = dict(os.environ, XDG_RUNTIME_DIR=work)
        config = os.path.join(work, "jobd.yaml")
        with open(config, "w") as f:
            f.write("pools:\n  cpu:\n    workers: 1\n")
        cluster = os.path.join(work, "cluster")
        nodes = []
        try:
            subprocess.run([jobd, "--detach", "--config", config, "--listen", "tcp://127.0.0.1:0",
                            "--cluster-file", cluster, "--log-file", f"{work}/head.log"],
                           env=env, check=True, capture_output=True)
            for i in range(count):
                nodes.append(subprocess.Popen(
                    [jobd, "join", "--cluster-file", cluster, "--name", f"sim{i}", "--config",
                     config], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for(lambda: read(f"{work}/head.log").count(") joined with") >= count, 60,
                     f"{count} nodes did not join")
            head = int(re.search(r"jobd\[(\d+)\]", read(f"{work}/head.log"))[1])
            lines = "1\n" * HEAD_CPU_ITEMS
            timed([jobctl, "map", "sleep"], "1\n" * 2000, env)  # learns the items' cost
            before = cpu_seconds(head)
            seconds, _ = timed([jobctl, "map", "sleep"], lines, env)
            out[count] = ((cpu_seconds(head) - before) / HEAD_CPU_ITEMS, seconds)
        finally:
            subprocess.run([jobctl, "shutdown"], env=env, capture_output=True)
            for node in nodes:
                node.wait(timeout=30)
            shutil.rmtree(work, ignore_errors=True)
    return out


def print_table(title, rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(title)
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


SLURM_ROWS = ("scaling", "overhead", "payloads")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    parser.add_argument("--items", type=int, default=5000,
                        help="trivial items of the overhead row (default 5000)")
    parser.add_argument("--only", default=",".join(SLURM_ROWS + ("head-cpu",)),
                        help="the rows to run, comma-separated (default: all)")
    args = parser.parse_args()
    rows = args.only.split(",")
    if not set(rows) <= set(SLURM_ROWS + ("head-cpu",)):
        sys.exit(f"cluster_bench: --only takes {', '.join(SLURM_ROWS + ('head-cpu',))}")
    build = os.path.abspath(args.build_dir)
    if "head-cpu" in rows:
        per_item = head_cpu(build)
        table = [("nodes", "time", "head CPU per item", "64-core nodes one head core feeds")]
        for count, (cpu, seconds) in per_item.items():
            table.append((str(count), f"{seconds:.2f} s", f"{cpu * 1e6:.1f} us",
                          f"{1 / cpu / 64000:.1f}"))
        print_table(f"head-cpu: {HEAD_CPU_ITEMS} items of 1 ms; nodes of 1 worker on this host",
                    table)
    rows = [row for row in rows if row in SLURM_ROWS]
    if not rows:
        return
    if os.getuid() != 0:
        sys.exit("cluster_bench: run as root (slurmd must)")
    for program in ("srun", "dask-scheduler", "dask-worker"):
        if shutil.which(program) is None:
            sys.exit(f"cluster_bench: {program} is missing: apt-get install slurm-wlm munge "
                     "python3-distributed")
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
        best = jobd_side(build, work, env, args.items, rows)
        best.update(dask_side(work, env, args.items, rows))
        if "payloads" in rows:
            best["raw payloads"] = curve_pair(build)
    finally:
        subprocess.run(["bash", HARNESS, "down", os.path.join(work, "slurm")])
        shutil.rmtree(work, ignore_errors=True)

    workers = NODES * WORKERS_PER_NODE
    table = [("benchmark", "jobd", "baseline", "result", "target", "")]
    if "scaling" in rows:
        for ms, target in ((50, 0.9), (10, 0.8)):
            ideal = 400 * ms / 1000 / workers
            ours, theirs = ideal / best[f"jobd {ms} ms"], ideal / best[f"dask {ms} ms"]
            table.append((f"scaling/{ms}ms", f"{best[f'jobd {ms} ms']:.3f} s",
                          f"dask {best[f'dask {ms} ms']:.3f} s",
                          f"{ours:.2f} of ideal ({theirs:.2f})", f">= {target}",
                          "PASS" if ours >= target else "FAIL"))
    if "overhead" in rows:
        ours, theirs = args.items / best["jobd overhead"], args.items / best["dask overhead"]
        table.append(("overhead", f"{ours:,.0f} items/s", f"dask {theirs:,.0f} items/s",
                      f"{ours / theirs:.1f}x", ">= 30x", "PASS" if ours / theirs >= 30 else "FAIL"))
    if "payloads" in rows:
        moved = 2 * PAYLOAD_ITEMS * PAYLOAD_BYTES / 1e9
        for place, suffix in (("", ""), (" head-host", "-head-host")):
            ours = best[f"jobd payloads{place}"]
            for name, theirs, target in (("raw CurveZMQ", best["raw payloads"], 0.8),
                                         ("dask", best["dask payloads"], 4)):
                table.append((f"payloads/{name.split()[-1].lower()}{suffix}",
                              f"{ours:.3f} s ({moved / ours:.2f} GB/s)",
                              f"{name} {theirs:.3f} s ({moved / theirs:.2f} GB/s)",
                              f"{theirs / ours:.2f}x", f">= {target}x",
                              "PASS" if theirs / ours >= target else "FAIL"))
    print_table(f"2 Slurm nodes on this host, {WORKERS_PER_NODE} workers each; best of 3", table)


if __name__ == "__main__":
    main()
