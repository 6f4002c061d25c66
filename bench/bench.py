#!/usr/bin/env python3
"""Benchmarks jobd against what it stands in for, on a private jobd.

  cpu       jobctl map primes: 2 workers against 1 (target: >= 1.9x faster)
  overhead  jobctl map identity --chunksize 1 against multiprocessing.Pool(2)
            (target: >= 5x the items/s)
  payload   jobctl map sha256 --files against xargs -P2 sha256sum on 1 GiB
            (target: >= 0.8x as fast)
  exec      jobctl map --exec 'true {}' against xargs -P2 and GNU parallel -j2
            (targets: >= 1.5x xargs's jobs/s, >= 5x parallel's)
  stream    jobctl map --stream (a Python stream function) against a Python
            script using multiprocessing.Pool(2).map (target: >= its items/s)
  plugin    jobctl map --plugin libjobd_text.so upper against the builtin
            identity (target: >= 2x the items/s)
  warm      a new program's first map of one item: jobctl map --python on a
            warm interpreter against a new python3 that starts
            multiprocessing.Pool(2) with fork (target: >= 10x faster, the
            target set for jobd.Pool, measured through jobctl until the
            Python client exists) and with spawn (for information)
  py-map    jobd.Pool().map(identity, range(100000)) against
            multiprocessing.Pool: chunksize=1 (target: >= 3x faster) and the
            default chunksize (target: >= 1x)
  py-cpu    jobd.Pool().map of a pure-Python CPU-bound function over 64
            items against a serial loop (target: >= 0.95 x cores faster)
  py-first  a new program's first jobd.Pool().map of one item (warm jobd)
            against creating multiprocessing.Pool(cores) and mapping one item:
            fork (target: >= 10x faster), spawn and forkserver (>= 50x)
  py-arrays map(identity) over 64 numpy arrays of 4 MiB against
            multiprocessing.Pool (target: >= 5x faster)
  py-submit 10,000 jobd.Executor().submit then every result against
            ProcessPoolExecutor (target: >= 2x faster)
  py-urls   32 URLs of a local server answering in 0.3 s: jobd.Pool(pool="io")
            against multiprocessing.dummy.Pool(16) (target: >= 1x)

Each benchmark runs its sides alternately, best of 3 (1 with --quick),
and notes how much CPU time other processes took meanwhile. Prints a table
(or, with --json, a JSON summary on stdout and the table on stderr); exits 1
if a target is missed or jobd leaves shared memory behind, 2 if something
could not be run at all. See bench/README.md.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

# primes(N) for N near 2*10^7 takes ~35 ms on one core: 64 of them ~2.3 s.
CPU_ITEMS = [str(20_000_000 + i) for i in range(64)]
OVERHEAD_ITEMS = 100_000
PAYLOAD_FILES = 64
PAYLOAD_FILE_BYTES = 16 << 20
EXEC_ITEMS = 2_000
STREAM_ITEMS = 200_000
PLUGIN_ITEMS = 1_000_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Above this share of the machine's CPU time used by other processes during a
# benchmark's runs, its numbers are flagged as disturbed.
NOISY = 0.05

CONFIG = """\
log_level: info
default_pool: two
pools:
  one: {workers: 1}
  two: {workers: 2}
  io: {workers: 16}
"""


class BenchError(Exception):
    """Something could not be run; the benchmark has no result."""


@dataclass
class Measure:
    label: str
    value: float
    unit: str  # "s", "items/s", "jobs/s", "MiB" or "x" (a ratio)

    def __str__(self):
        if self.unit in ("items/s", "jobs/s"):
            return f"{self.value:,.0f} {self.unit}"
        return f"{self.value:.{1 if self.unit == 'MiB' else 3}f} {self.unit}"


@dataclass
class Result:
    name: str
    jobd: Measure
    baseline: Optional[Measure]  # None when skipped
    ratio: Optional[float]  # how many times better jobd did than the baseline; None when skipped
    target: float  # the least ratio that passes
    others: float  # share of the CPU time that other processes used during the runs
    extras: list = field(default_factory=list)  # more Measures, for information
    skipped: str = ""  # why the baseline could not be run: the row neither passes nor fails

    @property
    def passed(self):
        """Whether the target was met; None when skipped."""
        return None if self.skipped else self.ratio >= self.target


def log(message):
    print(message, file=sys.stderr, flush=True)


def timed(argv, *, env=None, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL):
    """Runs argv to completion; returns (Popen, seconds, stdout text or None)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                            text=True)
    out, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        command = shlex.join(argv)
        if len(command) > 160:
            command = command[:160] + " ..."
        raise BenchError(f"`{command}` exited with {proc.returncode}: {err.strip()}")
    return proc, seconds, out


def busy_ticks():
    """(busy, all) CPU ticks since boot, summed over the CPUs; busy includes steal."""
    with open("/proc/stat") as f:
        ticks = [int(n) for n in f.readline().split()[1:9]]  # user ... steal, not guest
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # less idle and iowait


def process_ticks(pid):
    """CPU ticks (user + system) used by a running process and its children it has
    waited for (a worker's commands and stream processes), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0
    return sum(int(n) for n in fields[11:15])  # utime stime cutime cstime


def stdin_rate(argv, items, count):
    """Items per second of the whole command argv with the file `items` of `count`
    lines on stdin, output to /dev/null."""
    with items.open() as stdin:
        return count / timed(argv, stdin=stdin)[1]


def cpu_busy(seconds=1.0):
    """The fraction of all CPUs' time that was busy over the next `seconds`."""
    busy0, all0 = busy_ticks()
    time.sleep(seconds)
    busy1, all1 = busy_ticks()
    return (busy1 - busy0) / max(all1 - all0, 1)


class OthersMeter:
    """Measures the share of the machine's CPU time that processes other than
    this script, its children and jobd (with its workers and their commands) used
    while it is entered."""

    def __init__(self, jobd):
        self.jobd = jobd
        self.share = 0.0

    def ours(self):
        t = os.times()
        ticks = (t.user + t.system + t.children_user + t.children_system) * CLOCK_TICKS
        return ticks + sum(process_ticks(pid) for pid in self.jobd.server_pids | self.interpreters)

    def __enter__(self):
        # Interpreters that live through the runs: what they used counts as ours.
        self.interpreters = self.jobd.interpreters()
        self.start = busy_ticks(), self.ours()
        return self

    def __exit__(self, *exc):
        self.jobd.wait_for_commands()
        (busy0, all0), ours0 = self.start
        busy1, all1 = busy_ticks()
        self.interpreters |= self.jobd.interpreters()
        others = (busy1 - busy0) - (self.ours() - ours0)
        self.share = max(others, 0) / max(all1 - all0, 1)


def process_parents():
    """{pid: parent pid} of every process."""
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except FileNotFoundError:
                pass
    return parents


def warm_interpreter(pid):
    """Whether `pid` is a worker's warm Python interpreter (it stays)."""
    try:
        return b"jobd/_worker.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def shm_segments():
    """jobd's shared-memory segments of this user, jobd-UID-PID-RANDOM: {name: PID}."""
    pattern = re.compile(rf"jobd-{os.getuid()}-(\d+)-[0-9a-z]+")
    return {name: int(match[1]) for name in os.listdir("/dev/shm")
            if (match := pattern.fullmatch(name))}


class Jobd:
    """A private jobd, serving under its own XDG_RUNTIME_DIR."""

    def __init__(self, build_dir, runtime_dir):
        self.bin = build_dir / "bin"
        self.dir = runtime_dir
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
        self.env.pop("JOBD_SOCKET", None)
        self.pid = None
        self.server_pids = set()  # the daemon and its workers
        # Every process that may create segments in jobd's name: the daemon,
        # its workers and our jobctls. Segments of other jobds are not ours to judge.
        self.pids = set()

    def start(self):
        config = self.dir / "jobd.yaml"
        config.write_text(CONFIG)
        pid_file = self.dir / "jobd.pid"
        argv = [str(self.bin / "jobd"), "--config", str(config), "--detach",
                "--pid-file", str(pid_file), "--log-file", str(self.dir / "jobd.log")]
        timed(argv, env=self.env)
        self.pid = int(pid_file.read_text())
        self.note_workers()

    def jobctl(self, *args, **kwargs):
        """Runs jobctl; returns (seconds, stdout text or None)."""
        proc, seconds, out = timed([str(self.bin / "jobctl"), *args], env=self.env, **kwargs)
        self.pids.add(proc.pid)
        return seconds, out

    def map_rate(self, items, count, *args):
        """Items per second of the whole `jobctl map ARGS` with the file `items` of
        `count` lines on stdin, output to /dev/null."""
        with items.open() as stdin:
            return count / self.jobctl("map", *args, stdin=stdin)[0]

    def items_file(self, name, count):
        """A file in jobd's directory holding the lines of `seq 1 COUNT`."""
        path = self.dir / f"{name}-items.txt"
        path.write_text("".join(f"{i}\n" for i in range(1, count + 1)))
        return path

    def note_workers(self):
        _, out = self.jobctl("status", "--json", stdout=subprocess.PIPE)
        self.server_pids = {self.pid} | {worker["pid"] for pool in json.loads(out)["pools"]
                                         for worker in pool["workers"]}
        self.pids |= self.server_pids

    def wait_for_commands(self, timeout=2.0):
        """Waits (at most `timeout` s) until no worker has a child process left: a
        command or stream process of a job that has ended may still be exiting, and
        its CPU time counts in its worker's (cutime) only once the worker reaped it."""
        workers = self.server_pids - {self.pid}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
                parent in workers and not warm_interpreter(pid)
                for pid, parent in process_parents().items()):
            time.sleep(0.01)

    def interpreters(self):
        """The workers' warm Python interpreters (whose CPU time is jobd's)."""
        workers = self.server_pids - {self.pid}
        return {pid for pid, parent in process_parents().items() if parent in workers}

    def peak_rss_mib(self):
        """The daemon's peak resident set since it started (VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise BenchError(f"no VmHWM in /proc/{self.pid}/status")

    def shutdown(self, timeout=30):
        """Stops jobd; returns the shared-memory segments it left behind."""
        self.note_workers()
        self.jobctl("shutdown")
        deadline = time.monotonic() + timeout
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            raise BenchError(f"jobd (pid {self.pid}) was still running {timeout} s after "
                             "`jobctl shutdown`; sent it SIGTERM")
        return sorted(name for name, creator in shm_segments().items() if creator in self.pids)


def bench_cpu(jobd, repeats):
    one, two = [], []
    with OthersMeter(jobd) as others:
        for run in range(repeats):
            t1, out1 = jobd.jobctl("map", "primes", "--pool", "one", *CPU_ITEMS,
                                   stdout=subprocess.PIPE)
            t2, out2 = jobd.jobctl("map", "primes", "--pool", "two", *CPU_ITEMS,
                                   stdout=subprocess.PIPE)
            if out1 != out2 or len(out1.splitlines()) != len(CPU_ITEMS):
                raise BenchError("cpu: pools one and two gave different results")
            log(f"cpu      run {run + 1}/{repeats}: 1 worker {t1:.2f} s, 2 workers {t2:.2f} s")
            one.append(t1)
            two.append(t2)
    best1, best2 = min(one), min(two)
    return [Result("cpu",
                   Measure(f"jobctl map primes --pool two (2 workers), {len(CPU_ITEMS)} items",
                           best2, "s"),
                   Measure("jobctl map primes --pool one (1 worker)", best1, "s"),
                   ratio=best1 / best2, target=1.9, others=others.share)]


def bench_overhead(jobd, repeats):
    items = jobd.items_file("overhead", OVERHEAD_ITEMS)

    def jobctl_rate(*options):
        return jobd.map_rate(items, OVERHEAD_ITEMS, "identity", "--pool", "two", *options)

    pool_argv = [sys.executable, str(BENCH_DIR / "pool_identity.py"),
                 "--items", str(OVERHEAD_ITEMS), "--workers", "2"]
    chunk1, adaptive, python = [], [], []
    with OthersMeter(jobd) as others:
        for run in range(repeats):
            chunk1.append(jobctl_rate("--chunksize", "1"))
            adaptive.append(jobctl_rate())
            python.append(json.loads(timed(pool_argv, stdout=subprocess.PIPE)[2])["items_per_s"])
            log(f"overhead run {run + 1}/{repeats}: jobd {chunk1[-1]:,.0f} items/s "
                f"(adaptive {adaptive[-1]:,.0f}), Python {python[-1]:,.0f} items/s")
    best_jobd, best_python = max(chunk1), max(python)
    return [Result("overhead",
                   Measure(f"jobctl map identity --pool two --chunksize 1, {OVERHEAD_ITEMS:,} items "
                           "on stdin (whole command)", best_jobd, "items/s"),
                   Measure("multiprocessing.Pool(2).map(identity, chunksize=1) (map call only)",
                           best_python, "items/s"),
                   ratio=best_jobd / best_python, target=5.0, others=others.share,
                   extras=[Measure("jobd with adaptive chunk size", max(adaptive), "items/s")])]


def make_payload(directory):
    """PAYLOAD_FILES files of random data, written back to disk (so that writeback does
    not run during the timing) and read once (so that they are in the page cache)."""
    files = []
    for i in range(PAYLOAD_FILES):
        path = directory / f"payload-{i:02d}.bin"
        path.write_bytes(os.urandom(PAYLOAD_FILE_BYTES))
        files.append(str(path))
    os.sync()
    for path in files:
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    return files


def bench_payload(jobd, repeats):
    directory = Path(tempfile.mkdtemp(prefix="jobd-bench-payload-", dir="/var/tmp"))
    try:
        log(f"payload  writing {PAYLOAD_FILES} x {PAYLOAD_FILE_BYTES >> 20} MiB to {directory}")
        files = make_payload(directory)
        xargs_argv = ["bash", "-c", "set -o pipefail; ls " + shlex.join(files) +
                      " | xargs -P2 -n8 sha256sum"]
        ours, theirs = [], []
        with OthersMeter(jobd) as others:
            for run in range(repeats):
                t_jobd, out = jobd.jobctl("map", "sha256", "--pool", "two", "--files", *files,
                                          stdout=subprocess.PIPE)
                _, t_xargs, sums = timed(xargs_argv, stdout=subprocess.PIPE)
                expected = {path: digest for digest, path in
                            (line.split(maxsplit=1) for line in sums.splitlines())}
                if out.splitlines() != [expected.get(path) for path in files]:
                    raise BenchError("payload: jobctl's digests differ from sha256sum's")
                log(f"payload  run {run + 1}/{repeats}: jobd {t_jobd:.2f} s, "
                    f"xargs {t_xargs:.2f} s (digests agree)")
                ours.append(t_jobd)
                theirs.append(t_xargs)
    finally:
        shutil.rmtree(directory)
    best_jobd, best_xargs = min(ours), min(theirs)
    return [Result("payload",
                   Measure(f"jobctl map sha256 --pool two --files, {PAYLOAD_FILES} x "
                           f"{PAYLOAD_FILE_BYTES >> 20} MiB, cache-warm; digests agree with "
                           "sha256sum", best_jobd, "s"),
                   Measure("ls FILES | xargs -P2 -n8 sha256sum", best_xargs, "s"),
                   ratio=best_xargs / best_jobd, target=0.8, others=others.share,
                   extras=[Measure("jobd daemon peak RSS (VmHWM since start)",
                                   jobd.peak_rss_mib(), "MiB")])]


def gnu_parallel_missing():
    """Why GNU parallel cannot be run here, or "" if it can."""
    if shutil.which("parallel") is None:
        return "GNU parallel is not installed (apt-get install parallel)"
    version = subprocess.run(["parallel", "--version"], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True).stdout
    if not version.startswith("GNU parallel"):
        return "`parallel` is not GNU parallel (moreutils' parallel?)"
    return ""


def bench_exec(jobd, repeats):
    items = jobd.items_file("exec", EXEC_ITEMS)
    targets = {"xargs": 1.5, "parallel": 5.0}
    baselines = {"xargs": ["xargs", "-P2", "-I{}", "true", "{}"]}
    skipped = gnu_parallel_missing()
    if not skipped:
        baselines["parallel"] = ["parallel", "-j2", "true", "{}"]
    ours, theirs = [], {name: [] for name in baselines}
    with OthersMeter(jobd) as others:
        for run in range(repeats):
            ours.append(jobd.map_rate(items, EXEC_ITEMS, "--pool", "two", "--exec", "true {}"))
            for name, argv in baselines.items():
                theirs[name].append(stdin_rate(argv, items, EXEC_ITEMS))
            log(f"exec     run {run + 1}/{repeats}: jobd {ours[-1]:,.0f} jobs/s, "
                + ", ".join(f"{name} {rates[-1]:,.0f} jobs/s" for name, rates in theirs.items()))
    best = max(ours)
    jobd_side = Measure(f"jobctl map --pool two --exec 'true {{}}', {EXEC_ITEMS:,} items on "
                        "stdin (whole command)", best, "jobs/s")
    rows = [Result(f"exec/{name}", jobd_side,
                   Measure(f"{' '.join(argv)}, the same stdin", max(theirs[name]), "jobs/s"),
                   ratio=best / max(theirs[name]), target=targets[name], others=others.share)
            for name, argv in baselines.items()]
    if skipped:
        rows.append(Result("exec/parallel", jobd_side, None, ratio=None,
                           target=targets["parallel"], others=others.share, skipped=skipped))
    return rows


def bench_stream(jobd, repeats):
    items = jobd.items_file("stream", STREAM_ITEMS)
    # The interpreter itself, not a `python3` found on PATH that may be a
    # wrapper script (pyenv's shim costs ~0.1 s per start).
    stream = shlex.join([sys.executable, str(BENCH_DIR / "stream_upper.py")])
    pool_argv = [sys.executable, str(BENCH_DIR / "pool_upper.py"), "--workers", "2"]
    ours, theirs = [], []
    with OthersMeter(jobd) as others:
        for run in range(repeats):
            ours.append(jobd.map_rate(items, STREAM_ITEMS, "--pool", "two", "--stream", stream))
            theirs.append(stdin_rate(pool_argv, items, STREAM_ITEMS))
            log(f"stream   run {run + 1}/{repeats}: jobd {ours[-1]:,.0f} items/s, "
                f"Python {theirs[-1]:,.0f} items/s")
    return [Result("stream",
                   Measure(f"jobctl map --pool two --stream 'python3 bench/stream_upper.py' "
                           f"(jobd_stream.serve(str.upper)), {STREAM_ITEMS:,} items on stdin "
                           "(whole command)", max(ours), "items/s"),
                   Measure("python3 bench/pool_upper.py: multiprocessing.Pool(2).map(upper, "
                           "stdin lines) (whole command)", max(theirs), "items/s"),
                   ratio=max(ours) / max(theirs), target=1.0, others=others.share)]


def bench_plugin(jobd, repeats):
    plugin = jobd.bin.parent / "lib" / "libjobd_text.so"
    if not plugin.is_file():
        raise BenchError(f"no {plugin}; build jobd first (ninja -C build)")
    items = jobd.items_file("plugin", PLUGIN_ITEMS)
    ours, theirs = [], []
    with OthersMeter(jobd) as others:
        for run in range(repeats):
            ours.append(jobd.map_rate(items, PLUGIN_ITEMS, "--pool", "two", "--plugin", str(plugin),
                                      "upper"))
            theirs.append(jobd.map_rate(items, PLUGIN_ITEMS, "--pool", "two", "identity"))
            log(f"plugin   run {run + 1}/{repeats}: plugin {ours[-1]:,.0f} items/s, "
                f"builtin {theirs[-1]:,.0f} items/s")
    return [Result("plugin",
                   Measure(f"jobctl map --pool two --plugin BUILD/lib/libjobd_text.so upper, "
                           f"{PLUGIN_ITEMS:,} items on stdin, adaptive chunk size (whole command)",
                           max(ours), "items/s"),
                   Measure("jobctl map --pool two identity (builtin), the same items",
                           max(theirs), "items/s"),
                   ratio=max(ours) / max(theirs), target=2.0, others=others.share)]


def bench_warm(jobd, repeats):
    # jobctl --python runs python3 from PATH: this interpreter, not a wrapper.
    env = {**jobd.env, "PATH": os.path.dirname(sys.executable) + ":" + os.environ.get("PATH", ""),
           "PYTHONPATH": str(BENCH_DIR)}
    ours_argv = [str(jobd.bin / "jobctl"), "map", "--python", "warm_work:identity", "x"]
    cold = timed(ours_argv, env=env)[1]  # the first: an interpreter starts and imports
    ours, fork, spawn = [], [], []
    with OthersMeter(jobd) as others:
        for run in range(repeats):
            proc, seconds, _ = timed(ours_argv, env=env)
            jobd.pids.add(proc.pid)
            ours.append(seconds)
            fork.append(timed([sys.executable, str(BENCH_DIR / "warm_work.py"), "fork", "x"])[1])
            spawn.append(timed([sys.executable, str(BENCH_DIR / "warm_work.py"), "spawn", "x"])[1])
            log(f"warm     run {run + 1}/{repeats}: jobd {ours[-1] * 1000:.0f} ms, "
                f"Pool fork {fork[-1] * 1000:.0f} ms, spawn {spawn[-1] * 1000:.0f} ms")
    return [Result("warm",
                   Measure("jobctl map --python warm_work:identity x, a warm interpreter "
                           "(whole command)", min(ours), "s"),
                   Measure("python3 bench/warm_work.py fork x: multiprocessing.Pool(2) (fork) "
                           "started and mapping one item (whole command)", min(fork), "s"),
                   ratio=min(fork) / min(ours), target=10.0, others=others.share,
                   extras=[Measure("the same with the spawn start method (Python 3.14's "
                                   "default on Linux)", min(spawn), "s"),
                           Measure("jobctl's first run, while no interpreter was warm", cold, "s")])]


def package_python(jobd):
    """The interpreter the Python package was built for, and the environment
    that imports it and reaches the benchmark's jobd."""
    cache = jobd.bin.parent / "CMakeCache.txt"
    match = re.search(r"^Python3_EXECUTABLE:\w+=(.+)$", cache.read_text(), re.M) \
        if cache.is_file() else None
    if not match:
        raise BenchError(f"no Python3_EXECUTABLE in {cache}; build jobd first (ninja -C build)")
    env = {**jobd.env, "PYTHONPATH": f"{jobd.bin.parent / 'python'}:{BENCH_DIR}",
           "JOBD_AUTOSTART": "0"}
    return match[1], env


def python_bench(jobd, repeats, case, *args, runs=None):
    """Runs python_bench.py CASE ARGS `repeats` times; the best (least)
    seconds of each side. Each run's own seconds are added to `runs`."""
    python, env = package_python(jobd)
    best = {}
    for run in range(repeats):
        proc, _, out = timed([python, str(BENCH_DIR / "python_bench.py"), case, *args], env=env,
                             stdout=subprocess.PIPE)
        jobd.pids.add(proc.pid)
        if runs is not None:
            runs.append(json.loads(out))
        # (Lists are samples, as the map's pairs: runs keeps them.)
        sides = {side: seconds for side, seconds in json.loads(out).items()
                 if not isinstance(seconds, list)}
        for side, seconds in sides.items():
            best[side] = min(best.get(side, seconds), seconds)
        log(f"py-{case:<6} run {run + 1}/{repeats}: "
            + ", ".join(f"{side} {seconds * 1000:.1f} ms" for side, seconds in sides.items()
                        if side != "cores"))
    return best


def py_row(name, best, ours, ours_label, theirs, theirs_label, target, others, extras=()):
    """A py-* row: side `ours` of `best` against side `theirs`."""
    return Result(name, Measure(ours_label, best[ours], "s"),
                  Measure(theirs_label, best[theirs], "s"), ratio=best[theirs] / best[ours],
                  target=target, others=others.share, extras=list(extras))


def bench_py_map(jobd, repeats):
    runs = []
    with OthersMeter(jobd) as others:
        best = python_bench(jobd, repeats, "map", runs=runs)
    # The default chunksize's maps take milliseconds each, and this VM's speed
    # drifts by tens of percent within seconds: the row is the median of the
    # ratios of maps run in pairs (the sides taking turns to go first), as a
    # user repeating the map would see it, not the best time of each side,
    # which measures the luckiest of dozens of maps.
    pairs = [pair for run in runs for pair in run["pairs chunksize=None"]]
    medians = [statistics.median(side) for side in zip(*pairs)]
    return [py_row("py-map/chunksize=1", best, "jobd chunksize=1",
                   "jobd.Pool().map(identity, range(100000), chunksize=1)",
                   "multiprocessing chunksize=1",
                   "multiprocessing.Pool(cores).map(the same, chunksize=1)", 3.0, others),
            Result("py-map/default",
                   Measure(f"jobd.Pool().map(identity, range(100000)), median of {len(pairs)}",
                           medians[0], "s"),
                   Measure("multiprocessing.Pool(cores).map(the same), median", medians[1], "s"),
                   ratio=statistics.median(theirs / ours for ours, theirs in pairs), target=1.0,
                   others=others.share,
                   extras=[Measure("jobd's best map", best["jobd chunksize=None"], "s"),
                           Measure("multiprocessing's best map",
                                   best["multiprocessing chunksize=None"], "s"),
                           Measure("ratio of the best maps", best["multiprocessing chunksize=None"]
                                   / best["jobd chunksize=None"], "x")])]


def bench_py_cpu(jobd, repeats):
    # This VM's speed drifts by up to 30% within a minute: each run's sides
    # are measured interleaved (python_bench.py), and the row is the run with
    # the best speed-up, not the fastest of each side taken from different runs.
    runs = []
    with OthersMeter(jobd) as others:
        python_bench(jobd, repeats, "cpu", runs=runs)
    best = max(runs, key=lambda run: run["serial"] / run["jobd"])
    return [py_row("py-cpu", best, "jobd",
                   "jobd.Pool().map(busy, 64 items), pure-Python CPU work (~60 ms each)",
                   "serial", "[busy(n) for n in items], serial", 0.95 * best["cores"], others,
                   extras=[Measure("multiprocessing.Pool(cores), the same run",
                                   best["multiprocessing"], "s"),
                           Measure("multiprocessing's speed-up, the same run",
                                   best["serial"] / best["multiprocessing"], "x")])]


def bench_py_first(jobd, repeats):
    python_bench(jobd, 1, "first", "jobd")  # warms the interpreters: the point of the row
    best = {}
    with OthersMeter(jobd) as others:
        for run in range(repeats):
            for side in ("jobd", "fork", "spawn", "forkserver"):
                for name, seconds in python_bench(jobd, 1, "first", side).items():
                    best[name] = min(best.get(name, seconds), seconds)
    return [py_row(f"py-first/{side}", best, "jobd",
                   "a new program, after its imports: jobd.Pool(), map(identity, ['x']), "
                   "on warm interpreters", side,
                   f"the same with multiprocessing.get_context('{side}').Pool(cores)", target,
                   others, extras=[Measure("import jobd", best["import jobd"], "s"),
                                   Measure("import multiprocessing", best[f"import {side}"], "s")])
            for side, target in (("fork", 10.0), ("spawn", 50.0), ("forkserver", 50.0))]


def bench_py_arrays(jobd, repeats):
    with OthersMeter(jobd) as others:
        best = python_bench(jobd, repeats, "arrays")
    return [py_row("py-arrays", best, "jobd", "jobd.Pool().map(identity, 64 numpy arrays of 4 MiB)",
                   "multiprocessing", "multiprocessing.Pool(cores).map(the same)", 5.0, others)]


def bench_py_submit(jobd, repeats):
    with OthersMeter(jobd) as others:
        best = python_bench(jobd, repeats, "submit")
    return [py_row("py-submit", best, "jobd",
                   "jobd.Executor(): 10,000 submit(identity, i), then every result",
                   "ProcessPoolExecutor", "concurrent.futures.ProcessPoolExecutor(cores): the same",
                   2.0, others)]


def bench_py_urls(jobd, repeats):
    with OthersMeter(jobd) as others:
        best = python_bench(jobd, repeats, "urls")
    return [py_row("py-urls", best, "jobd",
                   "jobd.Pool(pool='io').map(fetch, 32 URLs answering in 0.3 s), 16 workers, warm",
                   "multiprocessing.dummy", "multiprocessing.dummy.Pool(16).map(the same)", 1.0,
                   others, extras=[Measure("jobd's first map in a run (interpreters of a new "
                                           "sys.path start)", best["jobd first"], "s"),
                                   Measure("serial", best["serial"], "s")])]


BENCHMARKS = {"cpu": bench_cpu, "overhead": bench_overhead, "payload": bench_payload,
              "exec": bench_exec, "stream": bench_stream, "plugin": bench_plugin,
              "warm": bench_warm, "py-map": bench_py_map, "py-cpu": bench_py_cpu,
              "py-first": bench_py_first, "py-arrays": bench_py_arrays,
              "py-submit": bench_py_submit, "py-urls": bench_py_urls}


def table(results, leftover, out):
    rows = [("benchmark", "jobd", "baseline", "ratio", "target", "result", "others' CPU")]
    rows += [(r.name, str(r.jobd), "-" if r.skipped else str(r.baseline),
              "-" if r.skipped else f"{r.ratio:.2f}x", f">= {r.target:.2f}x",
              {True: "PASS", False: "FAIL", None: "SKIPPED"}[r.passed],
              f"{r.others:.0%}" + (" (disturbed)" if r.others > NOISY else ""))
             for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(file=out)
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)
    print(file=out)
    for r in results:
        print(f"{r.name}: jobd = {r.jobd.label}", file=out)
        print(f"{' ' * len(r.name)}  baseline = "
              + (f"skipped: {r.skipped}" if r.skipped else r.baseline.label), file=out)
        for extra in r.extras:
            print(f"{' ' * len(r.name)}  {extra.label}: {extra}", file=out)
    print(f"\nothers' CPU: the share of the machine's CPU time that other processes used "
          "during the runs", file=out)
    if leftover:
        print(f"\nFAIL: jobd left {len(leftover)} shared-memory segments in /dev/shm: "
              + ", ".join(leftover), file=out)
    else:
        print("\njobd left no shared-memory segment in /dev/shm", file=out)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=Path, default=REPO / "build",
                        help="where jobd was built (default: build/ in the repository)")
    parser.add_argument("--only", choices=BENCHMARKS, help="run only this benchmark")
    parser.add_argument("--quick", action="store_true", help="one run of each side, not best of 3")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary on stdout (the table goes to stderr)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    names = [args.only] if args.only else list(BENCHMARKS)

    busy = cpu_busy()
    if busy > 0.2:
        log(f"bench: warning: the CPUs are {busy:.0%} busy before starting; other work on this "
            "machine will skew the numbers")
    build_dir = args.build_dir.resolve()
    for program in ("jobd", "jobd-worker", "jobctl"):
        if not os.access(build_dir / "bin" / program, os.X_OK):
            log(f"bench: no {build_dir / 'bin' / program}; build jobd first "
                "(ninja -C build) or name the build with --build-dir")
            return 2

    runtime_dir = Path(tempfile.mkdtemp(prefix="jobd-bench-"))
    jobd = Jobd(build_dir, runtime_dir)
    results, leftover = [], []
    try:
        try:
            jobd.start()
            log(f"jobd (pid {jobd.pid}) serving in {runtime_dir}; {os.cpu_count()} CPUs, "
                f"best of {repeats}")
            results = [row for name in names for row in BENCHMARKS[name](jobd, repeats)]
        finally:
            if jobd.pid is not None:
                leftover = jobd.shutdown()
    except BenchError as e:
        log(f"bench: {e}")
        if leftover:
            log(f"bench: jobd also left shared-memory segments: {', '.join(leftover)}")
        log(f"bench: jobd's log is kept in {runtime_dir}")
        return 2
    shutil.rmtree(runtime_dir)

    passed = all(r.passed is not False for r in results) and not leftover
    table(results, leftover, sys.stderr if args.json else sys.stdout)
    if args.json:
        summary = {
            "passed": passed,
            "cpus": os.cpu_count(),
            "cpu_busy_before": round(busy, 3),
            "repeats": repeats,
            "results": [{**asdict(r), "passed": r.passed} for r in results],
            "shm_leftover": leftover,
        }
        print(json.dumps(summary, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
