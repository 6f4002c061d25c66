#!/usr/bin/env python3
"""Soak test for jobd: a long run of mixed jobs and faults loses nothing and leaks nothing.

    ninja -C build
    python3 bench/soak.py [--minutes 10] [--build build] [--clients 4] [--json]

Not part of CI: run it on demand, on an otherwise quiet machine. It starts a
private jobd (its own XDG_RUNTIME_DIR, mode 0700, with a config of two pools:
`main`, whose items must survive having their workers killed, and `fragile`,
with one retry, where items that crash workers or time out fail) and, until
the time is up, runs at once:

  clients  --clients threads, each running `jobctl` jobs one after another and
           checking every item against results computed here: builtins
           (sha256, identity, len), --exec commands, --stream with
           worker/stream/jobd_stream.py, starmap (TSV, --zip, --const),
           --files, items over 16 KiB (shared memory), NUL-separated and
           --json/--unordered output; `crash` items and a `--timeout` on a
           `sleep` item must fail alone with the documented error; jobs
           cancelled midway (`jobctl cancel` or SIGINT to jobctl) must exit
           with the documented status, have printed a correct prefix, and
           leave jobd serving.
  kills    every 200 ms, SIGKILL to a random busy worker of `main`.
  garbage  every second, a connection to jobd's socket that sends random
           bytes, or a valid ZMTP handshake followed by random messages (so
           that they reach jobd's own decoding).
  reloads  every 60 s (the first after 30 s), the config is rewritten with
           another worker count for `main` and jobd gets SIGHUP; `jobctl
           status` must show the new count within 10 s.
  sampler  every 5 s, the daemon's VmRSS, and whether it runs and answers
           `jobctl ping`.

Then it stops jobd with `jobctl shutdown` and prints a report with PASS/FAIL
for each check:

  items     every item's result correct and there exactly once
  rss       daemon RSS grew by less than 5 MiB from the end of the warm-up
            (the first minute, or the first half of a shorter run) to the end
  daemon    jobd ran and answered throughout, then exited cleanly
  segments  no /dev/shm/jobd-<uid>-* segment made by this run's jobd, its
            workers or its jobctls is left (those of other jobds on the
            machine are not judged)
  reload    every SIGHUP applied the new worker count

Exit status: 0 all PASS, 1 a check failed (jobd's runtime directory and log
are then kept, and named in the report), 2 jobd could not be started.
--json prints the report as JSON on stdout. Progress goes to stderr.
"""
import argparse
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STREAM_HELPER_DIR = REPO / "worker" / "stream"

INLINE_LIMIT = 16 << 10    # larger payloads travel through shared memory
LARGE_SHARE = 0.03         # share of items (and files) above INLINE_LIMIT
LARGE_MAX = 100 << 10      # under the 128 KiB a single argv string may have (--exec)
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.,:;!?'\"/\\{}%$()[]<>|&*#@=+~^`"

KILL_PERIOD = 0.2
GARBAGE_PERIOD = 1.0
RELOAD_PERIOD = 60
RELOAD_WAIT = 10
SAMPLE_PERIOD = 5
WARMUP = 60
RSS_GROWTH_LIMIT_KIB = 5 << 10
JOB_TIMEOUT = 300          # a jobctl running longer is reported as hung
SHUTDOWN_TIMEOUT = 45      # jobd lets jobs finish for 30 s, then workers 5 s
MAIN_WORKERS = (2, 3)      # reloads switch `main` between these

CRASH_ERROR = ("the worker was killed by SIGABRT (signal 6) while running this item, 2 times; "
               "giving up (retries: 1)")
TIMEOUT_SECONDS = "0.3"
TIMEOUT_ERROR = ("timed out after 0.3 s while running this item, 1 time; "
                 "giving up (retries: 0)")

CONFIG = """\
log_level: info
default_pool: main
pools:
  # Its workers are killed under its jobs: retries at the maximum, a short
  # backoff and no restart limit, so that every item still succeeds.
  main:
    workers: {main_workers}
    retries: 100
    retry_backoff: 0.02
    task_timeout: 60
    memory_limit: 1G
    max_tasks_per_worker: 500
    max_restarts: 1000000
    restart_window: 10
  # Items that crash their worker or time out fail here, after one retry.
  fragile:
    workers: 2
    retries: 1
    task_timeout: 30
    memory_limit: 1G
    max_restarts: 1000000
"""

# Each argument reversed, joined by '|': one item of map, or a tuple of starmap.
STREAM_SCRIPT = """\
import sys
sys.path.insert(0, {helper_dir!r})
import jobd_stream
jobd_stream.serve(lambda *args: "|".join(arg[::-1] for arg in args))
"""

CHECKS = {
    "items": "every item correct and exactly once",
    "rss": "daemon RSS growth after warm-up < 5 MiB",
    "daemon": "daemon alive throughout and exits cleanly",
    "segments": "no shared-memory segment left",
    "reload": f"SIGHUP applies a new worker count within {RELOAD_WAIT} s",
}
PROBLEMS_KEPT = 20  # per check, in the JSON report; the rest are only counted
PROBLEMS_SHOWN = 5  # per check, in the text report

# ZMTP 3.0 as a DEALER with the NULL mechanism: enough for jobd's ROUTER to
# pass what follows to jobd as messages.
ZMTP_GREETING = b"\xff" + bytes(8) + b"\x7f\x03\x00" + b"NULL".ljust(20, b"\0") + bytes(32)
_READY = b"\x05READY\x0bSocket-Type" + (6).to_bytes(4, "big") + b"DEALER"
ZMTP_READY = b"\x04" + bytes([len(_READY)]) + _READY


class JobFailed(Exception):
    """A job did not do what it should have; the message says how."""


@dataclass(frozen=True)
class ItemError:
    """An item's error, expected or reported (a result is a plain str)."""
    message: str


class Tally:
    """What the run did and what went wrong, shared by every thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()      # worker kills, reloads sent and applied
        self.jobs = Counter()        # by kind
        self.garbage = Counter()     # messages sent, by kind of connection
        self.items = 0
        self.rss = []                # (seconds since start, KiB)
        self.problems = {check: [] for check in CHECKS}
        self.problem_counts = Counter()

    def count(self, counter, key, n=1):
        with self.lock:
            counter[key] += n

    def job_done(self, kind, items):
        with self.lock:
            self.jobs[kind] += 1
            self.items += items

    def problem(self, check, text):
        with self.lock:
            self.problem_counts[check] += 1
            if len(self.problems[check]) < PROBLEMS_KEPT:
                self.problems[check].append(text if len(text) <= 400 else text[:400] + "...")


class Jobd:
    """A private jobd under its own XDG_RUNTIME_DIR, and the jobctls run against it."""

    def __init__(self, build, runtime_dir):
        self.bin = build / "bin"
        self.dir = runtime_dir
        self.config = runtime_dir / "jobd.yaml"
        self.log = runtime_dir / "jobd.log"
        self.socket = runtime_dir / "jobd" / "jobd.sock"
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
        self.env.pop("JOBD_SOCKET", None)
        script = runtime_dir / "stream_reverse.py"
        script.write_text(STREAM_SCRIPT.format(helper_dir=str(STREAM_HELPER_DIR)))
        self.stream_command = shlex.join([sys.executable, str(script)])
        self.pid = None
        self.workers = set()  # every worker pid seen
        self.jobctls = set()  # every jobctl pid started

    def write_config(self, main_workers):
        """Replaces the config at once, so jobd never reads half of it."""
        new = self.config.with_suffix(".new")
        new.write_text(CONFIG.format(main_workers=main_workers))
        os.replace(new, self.config)

    def start(self):
        self.write_config(MAIN_WORKERS[0])
        pid_file = self.dir / "jobd.pid"
        subprocess.run([str(self.bin / "jobd"), "--config", str(self.config), "--detach",
                        "--pid-file", str(pid_file), "--log-file", str(self.log)],
                       env=self.env, check=True, capture_output=True, timeout=60)
        self.pid = int(pid_file.read_text())

    def spawn(self, *args):
        """Starts jobctl with pipes on every side, in its own process group (a
        Ctrl-C on the terminal stops the soak, not its jobs)."""
        proc = subprocess.Popen([str(self.bin / "jobctl"), *args], env=self.env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, process_group=0)
        self.jobctls.add(proc.pid)
        return proc

    def jobctl(self, *args, stdin=b"", timeout=JOB_TIMEOUT):
        """Runs jobctl to the end; returns (exit status, stdout, stderr)."""
        proc = self.spawn(*args)
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise JobFailed(f"jobctl {args[0]} hung: killed after {timeout} s") from None
        return proc.returncode, out, err

    def status(self):
        """`jobctl status --json`, or None if it failed; notes the workers' pids."""
        try:
            code, out, _ = self.jobctl("status", "--json", timeout=30)
        except JobFailed:
            return None
        if code != 0:
            return None
        report = json.loads(out)
        self.workers.update(worker["pid"] for pool in report["pools"] for worker in pool["workers"])
        return report

    def is_worker(self, pid):
        """Whether `pid` is still a child of the daemon (not a reused pid)."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return int(stat.rsplit(")", 1)[1].split()[1]) == self.pid

    def running(self):
        """Whether the daemon's process exists and is not a zombie."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return False
        return "\nState:\tZ" not in status

    def rss_kib(self):
        """The daemon's VmRSS, or None if it is gone (a zombie has none)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def log_tail(self, lines=2):
        return "\n".join(self.log.read_text(errors="replace").rstrip("\n").split("\n")[-lines:])

    def shutdown(self):
        """Stops jobd with `jobctl shutdown`; returns what was not clean about it."""
        self.status()  # the last workers' pids
        problems = []
        code, _, err = self.jobctl("shutdown", timeout=30)
        if code != 0:
            problems.append(f"`jobctl shutdown` exited {code}: {tail(err)}")
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
            return problems + [f"jobd still ran {SHUTDOWN_TIMEOUT} s after `jobctl shutdown`; "
                               "sent it SIGTERM"]
        if not self.log_tail(1).endswith("info: stopped"):
            problems.append(f"jobd's log does not end with 'stopped': {self.log_tail(1)!r}")
        if self.socket.exists():
            problems.append(f"{self.socket} is left")
        orphans = sorted(pid for pid in self.workers if is_process_of(pid, self.bin / "jobd-worker"))
        if orphans:
            problems.append(f"workers still running after jobd stopped: {orphans}")
        return problems


def is_process_of(pid, executable):
    try:
        return Path(f"/proc/{pid}/exe").resolve() == executable.resolve()
    except OSError:
        return False


def shm_segments():
    """jobd's shared-memory segments of this user, jobd-UID-PID-RANDOM: {name: PID}."""
    prefix = f"jobd-{os.getuid()}-"
    segments = {}
    for name in os.listdir("/dev/shm"):
        parts = name[len(prefix):].split("-")
        if name.startswith(prefix) and len(parts) == 2 and parts[0].isdigit():
            segments[name] = int(parts[0])
    return segments


def tail(data, size=300):
    text = data.decode(errors="replace").strip()
    return text if len(text) <= size else "..." + text[-size:]


def shorten(value, size=60):
    text = repr(value)
    return text if len(text) <= size else text[:size] + "..."


# ---- items, and what jobd should make of them ------------------------------

def random_text(rng, alphabet=ALPHABET):
    """Mostly a few bytes; sometimes more than INLINE_LIMIT."""
    large = rng.random() < LARGE_SHARE
    size = rng.randrange(INLINE_LIMIT + 1, LARGE_MAX) if large else rng.randrange(1, 64)
    return "".join(rng.choices(alphabet, k=size))


def random_items(rng, *, newlines=False):
    alphabet = ALPHABET + "\n" if newlines else ALPHABET
    return [random_text(rng, alphabet) for _ in range(rng.randrange(20, 300))]


def stdin_of(items, null=False):
    separator = "\0" if null else "\n"
    return "".join(item + separator for item in items).encode()


BUILTINS = {
    "sha256": lambda item: hashlib.sha256(item).hexdigest(),
    "identity": lambda item: item.decode(),
    "len": lambda item: str(len(item)),
}


def reverse_each(*args):
    """What STREAM_SCRIPT answers."""
    return "|".join(arg[::-1] for arg in args)


def output_options(rng, *, json_records=False):
    """jobctl's output options, and whether the output is JSON records. Unordered
    output only as JSON: its indexes tell which item each result is for."""
    json_records = json_records or rng.random() < 0.3
    if not json_records:
        return [], False
    return ["--json", "--unordered"] if rng.random() < 0.5 else ["--json"], True


def scheduling_options(rng):
    options = []
    if rng.random() < 0.3:
        options += ["--chunksize", str(rng.randint(1, 16))]
    if rng.random() < 0.2:
        options += ["--workers", "1"]
    return options


# ---- checking a job's output ------------------------------------------------

def line_results(out):
    text = out.decode()
    return list(enumerate(text.split("\n")[:-1]))


def json_results(out):
    results = []
    for line in out.decode().splitlines():
        record = json.loads(line)
        value = record["result"] if record["ok"] else ItemError(record["error"])
        results.append((record["index"], value))
    return results


def compare(results, expected):
    """Raises JobFailed unless `results` ((index, value) pairs) hold every expected
    value exactly once."""
    seen = Counter(index for index, _ in results)
    duplicated = sorted(index for index, n in seen.items() if n > 1)
    missing = [index for index in range(len(expected)) if index not in seen]
    wrong = [(index, value) for index, value in results
             if index >= len(expected) or value != expected[index]]
    if not (duplicated or missing or wrong):
        return
    text = f"{len(results)} results for {len(expected)} items"
    if duplicated:
        text += f"; {len(duplicated)} duplicated (first: item {duplicated[0]})"
    if missing:
        text += f"; {len(missing)} missing (first: item {missing[0]})"
    if wrong:
        index, value = wrong[0]
        want = expected[index] if index < len(expected) else "no such item"
        text += f"; {len(wrong)} wrong (first: item {index}: {shorten(value)}, not {shorten(want)})"
    raise JobFailed(text)


def run_and_check(jobd, argv, expected, *, stdin=b"", json_records=False):
    """Runs `jobctl ARGV` and checks its exit status and every item's result
    (or expected error); returns how many items it checked."""
    want_code = 1 if any(isinstance(value, ItemError) for value in expected) else 0
    code, out, err = jobd.jobctl(*argv, stdin=stdin)
    if code != want_code:
        raise JobFailed(f"jobctl exited {code}, not {want_code}: {tail(err)}")
    compare(json_results(out) if json_records else line_results(out), expected)
    return len(expected)


# ---- the kinds of jobs: each runs one job, checks it, returns the items checked

def builtin_job(jobd, rng):
    function = rng.choice(list(BUILTINS))
    null = rng.random() < 0.2  # NUL-separated items with newlines: JSON output
    items = random_items(rng, newlines=null)
    output, json_records = output_options(rng, json_records=null)
    argv = ["map", function, *(["-0"] if null else []), *scheduling_options(rng), *output]
    expected = [BUILTINS[function](item.encode()) for item in items]
    return run_and_check(jobd, argv, expected, stdin=stdin_of(items, null),
                         json_records=json_records)


def files_job(jobd, rng):
    function = rng.choice(["sha256", "len"])
    directory = Path(tempfile.mkdtemp(dir=jobd.dir, prefix="files-"))
    try:
        paths, expected = [], []
        for number in range(rng.randrange(5, 40)):
            path = directory / str(number)
            if rng.random() < 0.05:
                expected.append(ItemError(f"cannot read {path}: No such file or directory"))
            else:
                large = rng.random() < 5 * LARGE_SHARE
                contents = rng.randbytes(rng.randrange(INLINE_LIMIT + 1, 1 << 20) if large
                                         else rng.randrange(0, 4096))
                path.write_bytes(contents)
                expected.append(BUILTINS[function](contents))
            paths.append(str(path))
        has_errors = any(isinstance(value, ItemError) for value in expected)
        output, json_records = output_options(rng, json_records=has_errors)
        argv = ["map", function, "--files", *scheduling_options(rng), *output, *paths]
        return run_and_check(jobd, argv, expected, json_records=json_records)
    finally:
        shutil.rmtree(directory)


def exec_job(jobd, rng):
    suffix, shell = rng.choice([("-x", []), ("-y", ["--shell"])])
    items = random_items(rng)
    output, json_records = output_options(rng)
    argv = ["map", "--exec", f"printf %s{suffix} {{}}", *shell, *scheduling_options(rng), *output]
    return run_and_check(jobd, argv, [item + suffix for item in items], stdin=stdin_of(items),
                         json_records=json_records)


def stream_job(jobd, rng):
    framed = rng.random() < 0.3  # items with newlines: NUL-separated, framed, JSON output
    items = random_items(rng, newlines=framed)
    output, json_records = output_options(rng, json_records=framed)
    argv = ["map", "--stream", jobd.stream_command, *(["-0", "--framed"] if framed else []),
            *scheduling_options(rng), *output]
    return run_and_check(jobd, argv, [reverse_each(item) for item in items],
                         stdin=stdin_of(items, framed), json_records=json_records)


def starmap_job(jobd, rng):
    """Two arguments per item, from TSV stdin, --zip files or --const plus stdin,
    to a command or a stream coprocess."""
    if rng.random() < 0.5:
        command, answer = ["--exec", "printf %s+%s {1} {2}"], "+".join
    else:
        command, answer = ["--stream", jobd.stream_command], lambda args: reverse_each(*args)
    firsts = random_items(rng)
    seconds = [random_text(rng) for _ in firsts]
    source, stdin = rng.choice(["tsv", "zip", "const"]), b""
    if source == "tsv":
        stdin = stdin_of(f"{a}\t{b}" for a, b in zip(firsts, seconds))
    elif source == "const":
        firsts = [random_text(rng)] * len(seconds)
        command += ["--const", firsts[0]]
        stdin = stdin_of(seconds)
    else:
        columns = [jobd.dir / f"zip-{threading.get_ident()}-{n}" for n in (1, 2)]
        for path, column in zip(columns, (firsts, seconds)):
            path.write_bytes(stdin_of(column))
        command += ["--zip", *map(str, columns)]
    output, json_records = output_options(rng)
    argv = ["starmap", *command, *scheduling_options(rng), *output]
    expected = [answer((a, b)) for a, b in zip(firsts, seconds)]
    return run_and_check(jobd, argv, expected, stdin=stdin, json_records=json_records)


def crash_job(jobd, rng):
    """Items that abort their worker fail alone, after the fragile pool's one retry."""
    items = [f"ok-{random_text(rng)}" for _ in range(rng.randrange(2, 10))]
    for _ in range(rng.randint(1, 2)):
        items.insert(rng.randrange(len(items) + 1), f"boom-{rng.randrange(10**6)}")
    argv = ["map", "--pool", "fragile", "--json", "--chunksize", str(rng.randint(1, 4)), "crash"]
    expected = [item if item.startswith("ok") else ItemError(CRASH_ERROR) for item in items]
    return run_and_check(jobd, argv, expected, stdin=stdin_of(items), json_records=True)


def timeout_job(jobd, rng):
    """A 3 s sleep under a 0.3 s --timeout fails alone; the short ones succeed."""
    items = [str(rng.randrange(1, 20)) for _ in range(rng.randrange(2, 8))]
    items.insert(rng.randrange(len(items) + 1), "3000")
    argv = ["map", "--pool", "fragile", "--json", "--chunksize", "1", "--timeout",
            TIMEOUT_SECONDS, "--retries", "0", "sleep"]
    expected = [ItemError(TIMEOUT_ERROR) if item == "3000" else item for item in items]
    return run_and_check(jobd, argv, expected, stdin=stdin_of(items), json_records=True)


def cancel_job(jobd, rng):
    """A long job cancelled once it has results, by `jobctl cancel` or SIGINT: the
    documented exit status, a correct prefix of results, and jobd serving on."""
    items = [str(rng.randrange(5, 30)) for _ in range(400)]
    proc = jobd.spawn("map", "--chunksize", "1", "sleep")
    try:
        proc.stdin.write(stdin_of(items))  # far less than a pipe holds; communicate() closes it
        proc.stdin.flush()
        job_id = wait_for_results(jobd, proc)
        if rng.random() < 0.5:
            code, _, err = jobd.jobctl("cancel", job_id, timeout=30)
            if code != 0:
                raise JobFailed(f"`jobctl cancel {job_id}` exited {code}: {tail(err)}")
            want_code, want_error = 4, f"job {job_id} was cancelled by `jobctl cancel`"
        else:
            proc.send_signal(signal.SIGINT)
            want_code, want_error = 130, f"interrupted; job {job_id} cancelled"
        out, err = proc.communicate(timeout=JOB_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != want_code or want_error not in err.decode(errors="replace"):
        raise JobFailed(f"cancelled job exited {proc.returncode} (not {want_code}) saying "
                        f"{tail(err)!r}, not {want_error!r}")
    results = line_results(out)
    compare(results, items[:len(results)])
    code, out, err = jobd.jobctl("map", "len", "abc")
    if (code, out) != (0, b"3\n"):
        raise JobFailed(f"after a cancel, `jobctl map len abc` exited {code}: {tail(err)}")
    return len(results)


def wait_for_results(jobd, proc, timeout=60):
    """The id of `proc`'s job once it has a few results."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        report = jobd.status()
        for job in report["jobs"] if report else []:
            if job["client_pid"] == proc.pid and int(job["done"]) >= 5:
                return job["id"]
        time.sleep(0.05)
    raise JobFailed(f"job to cancel ended (exit {proc.poll()}) or had no results in {timeout} s")


JOB_KINDS = {  # kind: (run one job, weight)
    "builtin": (builtin_job, 3),
    "files": (files_job, 1),
    "exec": (exec_job, 2),
    "stream": (stream_job, 1),
    "starmap": (starmap_job, 2),
    "crash": (crash_job, 1),
    "timeout": (timeout_job, 1),
    "cancel": (cancel_job, 1),
}


# ---- the threads -------------------------------------------------------------

def client_loop(jobd, tally, stop):
    rng = random.Random()
    kinds = list(JOB_KINDS)
    weights = [weight for _, weight in JOB_KINDS.values()]
    while not stop.is_set():
        kind = rng.choices(kinds, weights)[0]
        try:
            tally.job_done(kind, JOB_KINDS[kind][0](jobd, rng))
        except Exception as error:  # a wrong result, and anything jobctl's output broke
            tally.job_done(kind, 0)
            tally.problem("items", f"{kind} job: {type(error).__name__}: {error}")


def kill_loop(jobd, tally, stop):
    """SIGKILL to a random busy worker of `main`, every KILL_PERIOD."""
    rng = random.Random()
    while not stop.wait(KILL_PERIOD):
        report = jobd.status()
        busy = [worker["pid"] for worker in pool_workers(report, "main")
                if worker["state"] == "busy"]
        if busy:
            victim = rng.choice(busy)
            if jobd.is_worker(victim):
                try:
                    os.kill(victim, signal.SIGKILL)
                    tally.count(tally.counts, "worker kills")
                except ProcessLookupError:
                    pass


def pool_workers(report, name):
    for pool in report["pools"] if report else []:
        if pool["name"] == name:
            return pool["workers"]
    return []


def garbage_loop(jobd, tally, stop):
    rng = random.Random()
    while not stop.wait(GARBAGE_PERIOD):
        try:
            kind, messages = send_garbage(jobd.socket, rng)
        except OSError as error:
            if jobd.rss_kib() is not None:  # if jobd is gone, sample_daemon says so
                tally.problem("daemon", f"cannot connect to {jobd.socket}: {error}")
        else:
            tally.count(tally.garbage, kind, messages)


def send_garbage(path, rng):
    """One connection to jobd's socket: random bytes, or random messages after a
    valid ZMTP handshake (so that jobd itself must reject them). Returns which,
    and how many messages (a blob of random bytes counts as one)."""
    kind, messages = rng.choice(["raw", "zmtp"]), 1
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(1)
        connection.connect(str(path))
        try:
            if kind == "raw":
                connection.sendall(rng.randbytes(rng.randrange(1, 4096)))
            else:
                connection.sendall(ZMTP_GREETING + ZMTP_READY)
                messages = rng.randrange(1, 20)
                for _ in range(messages):
                    body = rng.randbytes(rng.randrange(0, 256))
                    connection.sendall(bytes([0, len(body)]) + body)
                # Read jobd's answers until it hangs up, so that it saw every message.
                connection.shutdown(socket.SHUT_WR)
                while connection.recv(1 << 16):
                    pass
        except OSError:  # jobd hung up on the garbage: that is its right
            pass
    return kind, messages


def reload_loop(jobd, tally, stop, start):
    next_reload = start + RELOAD_PERIOD / 2
    while not stop.wait(max(0.0, next_reload - time.monotonic())):
        next_reload += RELOAD_PERIOD
        reload_config(jobd, tally, time.monotonic() - start)


def reload_config(jobd, tally, elapsed):
    """Rewrites the config with another worker count for `main`, sends SIGHUP and
    waits for `jobctl status` to show the new count."""
    current = len(pool_workers(jobd.status(), "main"))
    wanted = MAIN_WORKERS[1] if current == MAIN_WORKERS[0] else MAIN_WORKERS[0]
    jobd.write_config(wanted)
    try:
        os.kill(jobd.pid, signal.SIGHUP)
    except ProcessLookupError:
        return  # jobd is gone: sample_daemon reports it
    tally.count(tally.counts, "reloads")
    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        current = len(pool_workers(jobd.status(), "main"))
        if current == wanted:
            tally.count(tally.counts, "reloads applied")
            return
        time.sleep(0.2)
    tally.problem("reload", f"SIGHUP at {elapsed:.0f} s: pool main still has {current} workers "
                            f"{RELOAD_WAIT} s after the config asked for {wanted}")


def sample_daemon(jobd, tally, elapsed):
    """Records the daemon's RSS; returns False if it is gone."""
    rss = jobd.rss_kib()
    if rss is None:
        tally.problem("daemon", f"jobd (pid {jobd.pid}) is gone at {elapsed:.0f} s; its log ends: "
                                f"{jobd.log_tail()!r}")
        return False
    tally.rss.append((round(elapsed, 1), rss))
    code, _, err = jobd.jobctl("ping", timeout=30)
    if code != 0:
        tally.problem("daemon", f"`jobctl ping` exited {code} at {elapsed:.0f} s: {tail(err)}")
    return True


def run(jobd, tally, minutes, clients):
    """Runs every thread until the time is up (or Ctrl-C); returns the seconds run."""
    start = time.monotonic()
    deadline = start + minutes * 60
    stop = threading.Event()
    threads = [threading.Thread(target=client_loop, args=(jobd, tally, stop), daemon=True)
               for _ in range(clients)]
    threads += [threading.Thread(target=kill_loop, args=(jobd, tally, stop), daemon=True),
                threading.Thread(target=garbage_loop, args=(jobd, tally, stop), daemon=True),
                threading.Thread(target=reload_loop, args=(jobd, tally, stop, start), daemon=True)]
    for thread in threads:
        thread.start()
    next_progress = start + 60
    alive = True
    try:
        while time.monotonic() < deadline and alive:
            alive = sample_daemon(jobd, tally, time.monotonic() - start)
            if time.monotonic() >= next_progress:
                next_progress += 60
                print_progress(tally, time.monotonic() - start, minutes)
            stop.wait(min(SAMPLE_PERIOD, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        print("soak: interrupted; finishing the running jobs", file=sys.stderr)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    if alive:
        sample_daemon(jobd, tally, elapsed)  # the end, once the clients are done
    return elapsed


def print_progress(tally, elapsed, minutes):
    with tally.lock:
        problems = sum(tally.problem_counts.values())
        print(f"soak: {elapsed / 60:.0f}/{minutes:g} min: {sum(tally.jobs.values())} jobs, "
              f"{tally.items:,} items, {tally.counts['worker kills']} kills, {problems} problems",
              file=sys.stderr, flush=True)


# ---- the report ----------------------------------------------------------------

def check_rss(tally, seconds):
    """(RSS at the end of the warm-up, at the end, max) in KiB; records a problem
    if it grew too much."""
    warmup = min(WARMUP, seconds / 2)
    steady = [kib for at, kib in tally.rss if at >= warmup]
    if not steady:
        tally.problem("rss", "no RSS sample after the warm-up")
        return None, None, None
    first, last, peak = steady[0], steady[-1], max(kib for _, kib in tally.rss)
    if last - first >= RSS_GROWTH_LIMIT_KIB:
        tally.problem("rss", f"grew by {(last - first) / 1024:.1f} MiB after the warm-up "
                             f"({first} -> {last} KiB)")
    return first, last, peak


def build_report(jobd, tally, seconds, clients, leftover):
    for name in leftover:
        tally.problem("segments", f"/dev/shm/{name} left")
    steady, end, peak = check_rss(tally, seconds)
    if tally.counts["reloads"] == 0:
        tally.problem("reload", "no SIGHUP was sent: the run was too short, or jobd died first")
    checks = {name: {"passed": tally.problem_counts[name] == 0, "what": what,
                     "problems": tally.problems[name], "problem_count": tally.problem_counts[name]}
              for name, what in CHECKS.items()}
    passed = all(check["passed"] for check in checks.values())
    return {
        "minutes": round(seconds / 60, 2),
        "clients": clients,
        "jobs": dict(sorted(tally.jobs.items())),
        "items_verified": tally.items,
        "worker_kills": tally.counts["worker kills"],
        "garbage_messages": dict(sorted(tally.garbage.items())),
        "reloads": {"sent": tally.counts["reloads"], "applied": tally.counts["reloads applied"]},
        "rss_kib": {"warmup_seconds": min(WARMUP, seconds / 2), "after_warmup": steady,
                    "end": end, "max": peak, "samples": tally.rss},
        "checks": checks,
        "passed": passed,
        "kept": None if passed else str(jobd.dir),
    }


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def print_report(report):
    jobs = ", ".join(f"{kind} {n}" for kind, n in report["jobs"].items())
    garbage = report["garbage_messages"]
    rss = report["rss_kib"]
    print(f"jobd soak: {report['minutes']:.2f} minutes, {report['clients']} clients")
    print(f"jobs:            {sum(report['jobs'].values())} ({jobs})")
    print(f"items verified:  {report['items_verified']:,}")
    print(f"worker kills:    {report['worker_kills']}")
    print(f"garbage:         {sum(garbage.values())} messages "
          f"({', '.join(f'{kind} {n}' for kind, n in garbage.items())})")
    print(f"reloads:         {report['reloads']['sent']} sent, {report['reloads']['applied']} applied")
    print(f"daemon RSS:      {mib(rss['after_warmup'])} after warm-up ({rss['warmup_seconds']:.0f} s), "
          f"{mib(rss['end'])} at the end, {mib(rss['max'])} max")
    for name, check in report["checks"].items():
        print(f"{'PASS' if check['passed'] else 'FAIL'}  {name:9} {check['what']}")
        for problem in check["problems"][:PROBLEMS_SHOWN]:
            print(f"      - {problem}")
        if check["problem_count"] > PROBLEMS_SHOWN:
            print(f"      ... {check['problem_count'] - PROBLEMS_SHOWN} more")
    if report["kept"]:
        print(f"jobd's runtime directory and log are kept in {report['kept']}")
    print("PASS" if report["passed"] else "FAIL")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10, help="how long to run (default 10)")
    parser.add_argument("--build", type=Path, default=REPO / "build",
                        help="the build directory, with bin/jobd (default: build)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client loops (default 4)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()

    segments_before = set(shm_segments())
    jobd = Jobd(args.build.resolve(), Path(tempfile.mkdtemp(prefix="jobd-soak-")))
    try:
        jobd.start()
    except (subprocess.SubprocessError, OSError) as error:
        why = tail(error.stderr) if isinstance(error, subprocess.CalledProcessError) else error
        print(f"soak: could not start jobd: {why} (see {jobd.dir})", file=sys.stderr)
        return 2
    tally = Tally()
    try:
        seconds = run(jobd, tally, args.minutes, args.clients)
    finally:
        for problem in jobd.shutdown():
            tally.problem("daemon", problem)
    creators = {jobd.pid} | jobd.workers | jobd.jobctls
    leftover = sorted(name for name, creator in shm_segments().items()
                      if name not in segments_before and creator in creators)
    report = build_report(jobd, tally, seconds, args.clients, leftover)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    if report["passed"]:
        shutil.rmtree(jobd.dir)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
