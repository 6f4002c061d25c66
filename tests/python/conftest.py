"""A real jobd for the tests: started from the build tree on a socket of its
own, with real forked workers, stopped at the end.

The build tree is $JOBD_BUILD_DIR (ctest sets it), else ./build; the package
is imported from its python/ folder. The tests' jobd (and its workers) may
come from another build tree, $JOBD_DAEMON_DIR: one built with AddressSanitizer
(tests/sanitized_daemon.sh)."""

import os
import subprocess
import sys
import tempfile
import time

import pytest

BUILD = os.path.abspath(os.environ.get("JOBD_BUILD_DIR", os.path.join(
    os.path.dirname(__file__), "..", "..", "build")))
sys.path.insert(0, os.path.join(BUILD, "python"))
DAEMON = os.path.abspath(os.environ.get("JOBD_DAEMON_DIR", BUILD))
HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = """\
log_level: debug
pools:
  cpu:
    workers: 2
    retries: 2
    retry_backoff: 0
  io:
    workers: 8
    retries: 0
"""


class Jobd:
    """A jobd of the tests' own: its endpoint, log, and jobctl."""

    def __init__(self, root):
        self.root = root
        self.runtime = os.path.join(root, "run")
        os.mkdir(self.runtime, 0o700)
        self.endpoint = f"ipc://{self.runtime}/jobd.sock"
        self.log = os.path.join(root, "jobd.log")
        config = os.path.join(root, "jobd.yaml")
        with open(config, "w") as f:
            f.write(CONFIG)
        # --idle-exit: a session killed before its teardown leaves no jobd behind for long.
        # Also on loopback TCP, as a head is reached from other hosts.
        self.cluster_file = os.path.join(root, "cluster")
        subprocess.run([os.path.join(DAEMON, "bin", "jobd"), "--config", config, "--listen",
                        self.endpoint, "--listen", "tcp://127.0.0.1:0", "--cluster-file",
                        self.cluster_file, "--idle-exit", "300", "--detach", "--log-file",
                        self.log], check=True, stdout=subprocess.DEVNULL)

    def jobctl(self, *args, **kwargs):
        return subprocess.run([os.path.join(BUILD, "bin", "jobctl"), "--socket", self.endpoint,
                               *args], capture_output=True, text=True, **kwargs)

    def status(self):
        import json
        status = self.jobctl("status", "--json")
        assert status.returncode == 0, f"jobctl status failed: {status.stderr}"
        return json.loads(status.stdout)

    def wait_idle(self, timeout=10):
        """Waits until jobd runs no job; fails naming the jobs that remain."""
        deadline = time.monotonic() + timeout
        while (jobs := self.status().get("jobs", [])) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not jobs, f"jobs still running in jobd: {jobs}"

    def stop(self):
        self.jobctl("shutdown")


@pytest.fixture(scope="session")
def jobd_server():
    root = tempfile.mkdtemp(prefix="jobd-pytest-")
    server = Jobd(root)
    os.environ["JOBD_SOCKET"] = server.endpoint
    os.environ["JOBD_AUTOSTART"] = "0"  # a test that wants it says so
    yield server
    server.stop()


@pytest.fixture
def jobd_env(jobd_server):
    return jobd_server
