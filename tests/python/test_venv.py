"""The package pip-installed into a venv (python/pyproject.toml), as its README
says: the binding built for the venv's Python, the workers running it."""

import os
import subprocess
import sys

from conftest import HERE

SOURCE = os.path.dirname(os.path.dirname(HERE))


def test_pip_installs_into_a_venv_whose_python_the_workers_run(jobd_server, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    python = str(venv / "bin" / "python")
    pip = subprocess.run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                          os.path.join(SOURCE, "python")], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    program = subprocess.run([python, "-c", """
import sys, jobd
assert jobd.__file__.startswith(sys.prefix), jobd.__file__
with jobd.Pool() as pool:
    print(pool.map(lambda _: __import__("sys").executable, [1])[0])
"""], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert program.returncode == 0, program.stderr
    assert program.stdout.strip() == python
