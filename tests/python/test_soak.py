"""Soak: 64 concurrent clients mixing unary renders, ORDERED and LATEST streams, loss requests,
uploads, deletes, cancellations and disconnects against one server for DRR_SOAK_SECONDS, with no
unexpected error, and the server's RSS, threads and open files no larger after the run than after
its warm-up (each measured with every client gone). DRR_SOAK_SECONDS: 60 unless set; 0 skips it.

Should the server die, the test fails with its exit status and its last output: that output
found the upload tracker's use-after-free behind two CI runs' aborts (docs/reliability.md)."""

import os
import random
import threading
import time
from collections import Counter
from typing import Any

import grpc
import numpy as np
import pytest

from conftest import small_volume
from drr.v1 import renderer_pb2
from drrclient import Client, Intrinsics, Loss, Pose, RenderOptions

CLIENTS = 64
CAMERA = Intrinsics(sdd=300, delx=4.0, dely=4.0, height=16, width=16)
OPTIONS = RenderOptions(n_samples=64)
# What a client may be answered by design: its own cancellations, a LATEST frame superseded.
EXPECTED = {grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED}


def process_state(pid: int) -> tuple[float, int, int]:
    """(RSS MiB, threads, open file descriptors) of process ``pid``."""
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return (int(status["VmRSS"].split()[0]) / 1024, int(status["Threads"]),
            len(os.listdir(f"/proc/{pid}/fd")))


def state_of_live(server: Any) -> tuple[float, int, int]:
    """process_state of the server, which must be running; if it died, how (its exit status: a
    negative signal number, and its output since it started)."""
    if server.process.poll() is not None:
        raise AssertionError(f"drrserve exited {server.process.returncode}:\n"
                             + "".join(server.log + server.rest_of_output()[-50:]))
    return process_state(server.process.pid)


def pose(rng: random.Random) -> list[Pose]:
    return [Pose(rotation=(rng.uniform(-10, 10), 0, 0), translation=(0, 150, 0))]


def client_loop(address: str, seed: int, until: float, shared: str, target: str,
                outcomes: Counter[str], lock: threading.Lock) -> None:
    """One client doing one thing after another until ``until``."""
    rng = random.Random(seed)
    client = Client(address)
    own: list[str] = []

    def record(what: str) -> None:
        with lock:
            outcomes[what] += 1

    while time.monotonic() < until:
        action = rng.choice(["render", "ordered", "latest", "loss", "upload", "delete",
                             "cancel", "disconnect"])
        if (action == "upload" and len(own) >= 2) or (action == "delete" and not own):
            continue
        try:
            if action == "render":
                client.render(shared, pose(rng), CAMERA, OPTIONS)
            elif action in ("ordered", "latest"):
                frames = []
                for f in range(6):
                    r = client.render_request(shared, pose(rng), CAMERA, OPTIONS)
                    r.frame_id = f
                    if action == "latest":
                        r.stream_mode = renderer_pb2.STREAM_MODE_LATEST
                    frames.append(r)
                for frame in client.render_stream(iter(frames)):
                    if frame.error is not None and frame.error.code not in EXPECTED:
                        record(f"unexpected {action} frame {frame.error.code.name}")
            elif action == "loss":
                client.loss_and_grad(shared, target, pose(rng), CAMERA, Loss(kind="ncc"),
                                     OPTIONS)
            elif action == "upload":
                own.append(client.upload_volume(*small_volume(rng.randrange(1 << 30),
                                                              shape=(8, 12, 16))))
            elif action == "delete":
                client.delete_volume(own.pop())
            elif action == "cancel":
                request = client.render_request(shared, pose(rng) * 4, CAMERA, OPTIONS)
                future = client._renderer.Render.future(request)  # noqa: SLF001
                time.sleep(rng.uniform(0, 0.01))
                future.cancel()
            elif action == "disconnect":
                client.close()  # mid-conversation, as a crashing client would
                client = Client(address)
            record(action)
        except grpc.RpcError as error:
            code = error.code()
            if code in EXPECTED and action in ("cancel", "disconnect"):
                record(action)
            else:
                record(f"unexpected {action} {code.name}: {error.details()}")
    for vid in own:  # what it stored goes with it
        client.delete_volume(vid)
    client.close()


def run_phase(address: str, seconds: float, shared: str, target: str, seed: int,
              outcomes: Counter[str]) -> None:
    until = time.monotonic() + seconds
    lock = threading.Lock()
    threads = [threading.Thread(target=client_loop,
                                args=(address, seed * 1000 + i, until, shared, target,
                                      outcomes, lock))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
        assert not t.is_alive(), "a soak client hung"


SECONDS = float(os.environ.get("DRR_SOAK_SECONDS", "60"))


@pytest.mark.skipif(SECONDS <= 0, reason="DRR_SOAK_SECONDS=0")
def test_soak_of_64_mixed_clients(servers: Any) -> None:
    seconds = SECONDS
    # Room for every client's volumes and uploads at once: the bounds themselves are pushed
    # past by their own tests.
    server = servers("--max-volumes", str(2 * CLIENTS + 8), "--max-concurrent-uploads",
                     str(CLIENTS))
    with Client(server.address) as setup:
        shared = setup.upload_volume(*small_volume(7))
        target = setup.upload_target(np.ones((16, 16), np.float32))
    outcomes: Counter[str] = Counter()
    run_phase(server.address, seconds / 4, shared, target, 1, outcomes)
    time.sleep(1.5)
    warm = state_of_live(server)
    run_phase(server.address, seconds * 3 / 4, shared, target, 2, outcomes)
    time.sleep(1.5)
    end = state_of_live(server)
    unexpected = {k: v for k, v in outcomes.items() if k.startswith("unexpected")}
    assert not unexpected, unexpected
    assert sum(outcomes.values()) > CLIENTS * 10, outcomes
    print(f"soak: {seconds} s, {sum(outcomes.values())} actions {dict(outcomes)}; "
          f"warm RSS {warm[0]:.1f} MiB, {warm[1]} threads, {warm[2]} fds; "
          f"end RSS {end[0]:.1f} MiB, {end[1]} threads, {end[2]} fds")
    assert end[2] <= warm[2] + 2, (warm, end)  # no leaked descriptors
    assert end[1] <= warm[1] + 4, (warm, end)  # no leaked threads
    # AddressSanitizer's quarantine holds freed memory on purpose: RSS means nothing there.
    if os.environ.get("DRR_SANITIZED") != "1":
        assert end[0] <= 1.1 * warm[0], (warm, end)
