"""drrclient as a user installs it: a wheel whose generated protobuf and gRPC code (under
drrclient._proto, no top-level `drr`) comes from the grpcio-tools pyproject.toml pins, and whose
runtime requirements admit only protobuf and grpcio versions that code runs on. The wheel is
installed into fresh venvs with the oldest and the newest protobuf it accepts, imported, and used
against a real server."""

import pathlib
import re
import shutil
import socket
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import tomllib

from conftest import small_volume

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "client" / "python"
GENERATED = PACKAGE / "drrclient" / "_proto" / "drr" / "v1"


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def requirement(name: str) -> str:
    """The requirement on ``name`` among drrclient's dependencies."""
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    (found,) = [r for r in project["project"]["dependencies"] if re.match(rf"{name}\b", r)]
    return found


def gencode_versions() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(protobuf gencode, gRPC gencode) of the generated code, as the checks in it read them."""
    protobuf = set()
    for path in GENERATED.glob("*_pb2.py"):
        match = re.search(r"ValidateProtobufRuntimeVersion\(\s*\S+,\s*(\d+),\s*(\d+),\s*(\d+),",
                          path.read_text())
        assert match, path
        protobuf.add(tuple(int(g) for g in match.groups()))
    grpc = {version(m) for path in GENERATED.glob("*_pb2_grpc.py")
            for m in re.findall(r"GRPC_GENERATED_VERSION = '([\d.]+)'", path.read_text())}
    assert len(protobuf) == 1 and len(grpc) == 1
    return protobuf.pop(), grpc.pop()


def test_the_runtime_requirements_admit_only_what_the_generated_code_runs_on() -> None:
    protobuf, grpc = gencode_versions()
    # protobuf: from the gencode's version up to (not including) the next major.
    assert requirement("protobuf") == (
        f"protobuf>={'.'.join(map(str, protobuf))},<{protobuf[0] + 1}")
    assert version(requirement("grpcio").removeprefix("grpcio>=")) >= grpc
    # The pinned generator of the wheel is the one the checkout generates with.
    build = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["build-system"]["requires"]
    (tools,) = [r for r in build if r.startswith("grpcio-tools")]
    assert tools in (ROOT / "requirements-dev.txt").read_text().splitlines()


def pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: Any) -> pathlib.Path:
    if not pypi_reachable():
        pytest.skip("PyPI is not reachable: the package's build requirements cannot be installed")
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy (a build writes build/ and *.egg-info beside setup.py), laid out as the
    # checkout is: the package finds proto/ two levels up.
    copy = tmp_path_factory.mktemp("checkout")
    shutil.copytree(ROOT / "proto", copy / "proto")
    shutil.copytree(PACKAGE, copy / "client" / "python",
                    ignore=shutil.ignore_patterns("_proto", "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    str(copy / "client" / "python")], check=True)
    (built,) = out.glob("drrclient-*.whl")
    return built


# Run in the fresh venv: imports the package (no top-level drr), checks the protobuf installed,
# uploads a volume to the server at argv[1] and renders it.
USE = """
import importlib.util, sys
import google.protobuf, numpy as np
import drrclient
from drrclient._proto.drr.v1 import renderer_pb2
assert importlib.util.find_spec("drr") is None, "a top-level drr package is installed"
assert google.protobuf.__version__ == sys.argv[2], google.protobuf.__version__
voxels = np.load(sys.argv[3])
with drrclient.Client(sys.argv[1]) as client:
    volume = client.upload_volume(voxels, np.diag([1.5, 1.5, 2.0, 1.0]))
    image = client.render(volume, [drrclient.Pose(translation=(0, 150, 0))],
                          drrclient.Intrinsics(sdd=300, delx=2.0, dely=2.0, height=8, width=8))
assert image.shape == (1, 1, 8, 8) and float(image.max()) > 0
assert isinstance(renderer_pb2.RenderRequest(), google.protobuf.message.Message)
import pickle
request = renderer_pb2.RenderRequest(volume_id=volume, frame_id=7)
assert pickle.loads(pickle.dumps(request)) == request  # its module imports without a drr
"""


@pytest.mark.parametrize("protobuf", ["oldest", "newest"])
def test_the_wheel_installs_imports_and_renders_with_each_protobuf_it_accepts(
        protobuf: str, wheel: pathlib.Path, server: Any, tmp_path: pathlib.Path) -> None:
    lowest = requirement("protobuf").split(">=")[1].split(",")[0]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pinned = [f"protobuf=={lowest}"] if protobuf == "oldest" else []
    subprocess.run([python, "-m", "pip", "install", "-q", str(wheel), *pinned], check=True)
    installed = subprocess.run(
        [python, "-c", "import google.protobuf; print(google.protobuf.__version__)"],
        check=True, capture_output=True, text=True).stdout.strip()
    if protobuf == "oldest":
        assert installed == lowest
    else:  # pip took the newest it could: at least the lowest, below the next major
        assert version(lowest) <= version(installed) < (version(lowest)[0] + 1,)
    voxels_path = tmp_path / "voxels.npy"
    np.save(voxels_path, small_volume(3)[0])
    used = subprocess.run([python, "-c", USE, server.address, installed, str(voxels_path)],
                          capture_output=True, text=True, check=False)
    assert used.returncode == 0, used.stdout + used.stderr
