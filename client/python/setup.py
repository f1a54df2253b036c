"""Builds the drr.v1 Python stubs from ../../proto into the package when
drrclient is installed from a checkout (`pip install client/python`)."""

import pathlib
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

PROTO_ROOT = pathlib.Path(__file__).resolve().parents[2] / "proto"


class BuildWithStubs(build_py):
    """build_py that also generates drr/v1/*_pb2*.py with grpcio-tools."""

    def run(self) -> None:
        super().run()
        out = pathlib.Path(self.build_lib)
        protos = sorted(str(p) for p in (PROTO_ROOT / "drr" / "v1").glob("*.proto"))
        subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={PROTO_ROOT}",
                        f"--python_out={out}", f"--grpc_python_out={out}", *protos], check=True)
        for package in (out / "drr", out / "drr" / "v1"):
            (package / "__init__.py").touch()


setup(cmdclass={"build_py": BuildWithStubs})
