"""Builds drrclient with its drr.v1 protobuf and gRPC code generated into drrclient._proto
(gen_stubs.py) when it is installed from a checkout (`pip install client/python`)."""

import importlib.util
import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent


class BuildWithStubs(build_py):
    """build_py that also generates drrclient/_proto with the pinned grpcio-tools."""

    def run(self) -> None:
        super().run()
        # A build directory reused from a build of the package before drrclient._proto.
        shutil.rmtree(pathlib.Path(self.build_lib) / "drr", ignore_errors=True)
        spec = importlib.util.spec_from_file_location("gen_stubs", HERE / "gen_stubs.py")
        assert spec is not None and spec.loader is not None
        gen_stubs = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gen_stubs)
        gen_stubs.generate(pathlib.Path(self.build_lib))


setup(cmdclass={"build_py": BuildWithStubs})
