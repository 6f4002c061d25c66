"""Builds jobd._client (python/binding.cc and the client library) with CMake
on this source tree, for the Python that runs pip; pyproject.toml holds the
rest."""

import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = pathlib.Path(__file__).resolve().parent.parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = pathlib.Path(self.build_temp).resolve() / "cmake"
        subprocess.run(["cmake", "-S", str(SOURCE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                        f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
                       check=True)
        subprocess.run(["cmake", "--build", str(build), "--target", "jobd_python_client"],
                       check=True)
        built = next((build / "python" / "jobd").glob("_client*.so"))
        target = pathlib.Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(built, target)


setup(ext_modules=[Extension("jobd._client", sources=[])], cmdclass={"build_ext": CMakeBuild})
