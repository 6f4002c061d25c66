"""jobd.Pool and jobd.Executor reaching jobd by its cluster file, over TCP
(CurveZMQ), as from another host: arguments and results travel inline.
(This host is the head's, where the cluster file would lead to its local
socket: JOBD_CLUSTER_LOCAL=0 makes the clients take the TCP way.)"""

import concurrent.futures
import json
import os
import subprocess
import time

import numpy
import pytest

import jobd
import work
from conftest import BUILD


@pytest.fixture(autouse=True)
def as_from_another_host(monkeypatch):
    monkeypatch.setenv("JOBD_CLUSTER_LOCAL", "0")


def test_on_the_heads_host_a_pool_takes_its_local_socket(jobd_server, monkeypatch):
    monkeypatch.delenv("JOBD_CLUSTER_LOCAL")
    arrays = [numpy.full((256, 1024), i, dtype=numpy.float64) for i in range(4)]  # 2 MiB each
    with jobd.Pool(cluster_file=jobd_server.cluster_file) as pool:
        doubled = pool.map(work.double_array, arrays, chunksize=1)
    assert all((d == 2 * a).all() for a, d in zip(arrays, doubled))
    jobs = json.loads(jobd_server.jobctl("jobs", "--json").stdout)["jobs"]
    assert jobs[0]["pid"] == os.getpid(), "a client on another host has no pid there"
    jobd_server.wait_idle()


def test_a_pool_by_cluster_file_maps_small_and_large_values(jobd_server):
    arrays = [numpy.full((256, 1024), i, dtype=numpy.float64) for i in range(6)]  # 2 MiB each
    with jobd.Pool(cluster_file=jobd_server.cluster_file) as pool:
        assert pool.map(work.square, range(50)) == [n * n for n in range(50)]
        doubled = pool.map(work.double_array, arrays, chunksize=1)
        assert all((d == 2 * a).all() and d.flags.writeable for a, d in zip(arrays, doubled))
        with pytest.raises(ZeroDivisionError):
            pool.apply(work.divide, (1, 0))
    jobd_server.wait_idle()


def test_an_executor_by_the_environment(jobd_server, monkeypatch):
    monkeypatch.delenv("JOBD_SOCKET")
    monkeypatch.setenv("JOBD_CLUSTER_FILE", jobd_server.cluster_file)
    with jobd.Executor() as executor:
        futures = [executor.submit(work.square, n) for n in range(20)]
        done = {f.result() for f in concurrent.futures.as_completed(futures)}
        assert done == {n * n for n in range(20)}
        assert sorted(f.result() for f in futures) == [n * n for n in range(20)]


def test_a_missing_cluster_file_says_what_to_do(tmp_path):
    with pytest.raises(jobd.JobdError, match="is it running"):
        jobd.Pool(cluster_file=tmp_path / "none")
    with pytest.raises(ValueError, match="not both"):
        jobd.Pool(socket="ipc:///x", cluster_file=tmp_path / "none")


def test_a_cluster_file_others_may_read_is_refused(jobd_server, tmp_path):
    copy = tmp_path / "cluster"
    copy.write_bytes(open(jobd_server.cluster_file, "rb").read())
    os.chmod(copy, 0o644)
    with pytest.raises(jobd.JobdError, match="chmod 600"):
        jobd.Pool(cluster_file=copy)


def test_python_functions_run_on_a_node_with_their_arrays_in_its_shared_memory(jobd_server):
    """A node (jobd join) takes its share of a Python map: the function, its
    arguments and results cross to it over TCP, and reach its workers, as on
    the head, in shared memory."""
    root = jobd_server.root
    with open(os.path.join(root, "node.yaml"), "w") as f:
        f.write("pools:\n  cpu:\n    workers: 2\n")
    node_socket = f"ipc://{jobd_server.runtime}/node-py.sock"
    node = subprocess.Popen([os.path.join(BUILD, "bin", "jobd"), "join", "--cluster-file",
                             jobd_server.cluster_file, "--name", "py", "--listen", node_socket,
                             "--config", os.path.join(root, "node.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(n["name"] == "py" and n.get("state") == "serving"
                      for n in jobd_server.status().get("nodes", [])):
            assert time.monotonic() < deadline, "the node did not join"
            time.sleep(0.05)
        arrays = [numpy.full((256, 1024), i, dtype=numpy.float64) for i in range(24)]  # 2 MiB
        with jobd.Pool(cluster_file=jobd_server.cluster_file) as pool:
            results = pool.map(work.double_where, arrays, chunksize=1)
        assert all((doubled == 2 * a).all() for a, (doubled, _) in zip(arrays, results))
        ran_on = {where for _, where in results}
        assert "py" in ran_on and len(ran_on) == 2, f"both hosts ran items: {ran_on}"
        node_status = subprocess.run([os.path.join(BUILD, "bin", "jobctl"), "--socket",
                                      node_socket, "status", "--json"], capture_output=True,
                                     text=True, check=True).stdout
        cpu = next(p for p in json.loads(node_status)["pools"] if p["name"] == "cpu")
        assert int(cpu["payload_bytes_shared"]) >= 2 << 20, cpu
        assert int(cpu["payload_bytes_inline"]) < 1 << 20, "arrays crossed its worker socket"
    finally:
        subprocess.run([os.path.join(BUILD, "bin", "jobctl"), "--socket", node_socket,
                        "shutdown"], capture_output=True)
        node.wait(timeout=30)
    jobd_server.wait_idle()
