"""Fixtures that run the real drrserve binary on loopback."""

import os
import pathlib
import queue
import re
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from drrclient import Client, load_nifti

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("DRR_BUILD_DIR", ROOT / "build"))
SHARED_DATA = pathlib.Path(os.environ.get("DRR_SHARED_DATA", ROOT.parent / "shared" / "data"))
CHEST = SHARED_DATA / "lidc-idri-0001.nii.gz"
DRRSERVE = BUILD / "server" / "drrserve"
DRRCTL = BUILD / "client" / "drrctl"


def free_port() -> int:
    """A loopback port nothing listens on now (for a process that needs a fixed one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_listening(port: int, seconds: float = 10) -> None:
    """Returns once something accepts connections on loopback ``port``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class RunningServer:
    """A drrserve process on 127.0.0.1 with its gRPC and metrics ports; ``prefix`` is a command
    that runs it (it must exec drrserve, whose output and exit status the test reads); ``listen``
    its gRPC address (port 0: any free port)."""

    def __init__(self, *extra_args, timeout=60, prefix=(), listen="127.0.0.1:0"):
        self.process = subprocess.Popen(
            [*prefix, str(DRRSERVE), "--listen", listen, "--metrics-listen", "127.0.0.1:0",
             "--device", "cpu", *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.log = []
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.stop()
                raise RuntimeError("drrserve did not start:\n" + "".join(self.log)) from None
            if line is None:
                raise RuntimeError("drrserve exited:\n" + "".join(self.log))
            self.log.append(line)
            match = re.search(r"listening on port (\d+), metrics on port (\d+)", line)
            if match:
                self.port, self.metrics_port = int(match.group(1)), int(match.group(2))
                break
        self.address = f"127.0.0.1:{self.port}"

    def _pump(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def rest_of_output(self):
        """The output lines of the exited server not read yet, up to its end."""
        lines = []
        while (line := self.lines.get(timeout=10)) is not None:
            lines.append(line)
        return lines

    def stop(self):
        self.process.terminate()
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture()
def servers():
    """Starts servers of the test's own (``servers("--flag", "value")``); stops those still
    running afterwards, expecting a clean exit."""
    started = []

    def start(*args, prefix=()):
        running = RunningServer(*args, prefix=prefix)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            assert running.stop() == 0, "drrserve did not shut down cleanly on SIGTERM"


@pytest.fixture(scope="session")
def server():
    running = RunningServer()
    yield running
    assert running.stop() == 0, "drrserve did not shut down cleanly on SIGTERM"


@pytest.fixture()
def client(server):
    with Client(server.address) as c:
        yield c


@pytest.fixture(scope="session")
def chest_path():
    """The bundled chest CT's path; a test that needs it skips without it."""
    if not CHEST.exists():
        pytest.skip(f"{CHEST} is absent")
    return CHEST


@pytest.fixture(scope="session")
def chest(chest_path):
    """(voxels (D, H, W) int16 HU, affine) of the bundled chest CT."""
    return load_nifti(str(chest_path))


def small_volume(seed=0, shape=(24, 28, 32)):
    """A random-ish HU volume and an oblique anisotropic affine."""
    rng = np.random.default_rng(seed)
    voxels = rng.integers(-1000, 1500, size=shape).astype(np.int16)
    affine = np.array([[-1.5, 0.1, 0.0, 20.0], [0.0, -1.2, 0.2, 15.0],
                       [0.05, 0.0, 2.0, -30.0], [0, 0, 0, 1]])
    return voxels, affine
