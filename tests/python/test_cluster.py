"""jobd.Pool and jobd.Executor reaching jobd by its cluster file, over TCP
(CurveZMQ), as from another host: arguments and results travel inline."""

import concurrent.futures
import os

import numpy
import pytest

import jobd
import work


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
