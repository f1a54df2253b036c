"""--data-dir: what a server acknowledged survives kill -9 and a restart; nothing half-written
is ever visible; a corrupt file is set aside and reported, never served."""

import pathlib
import threading
import time
from typing import Any

import grpc
import numpy as np
import pytest

from conftest import small_volume
from drrclient import Client, Intrinsics, Pose, volume_id

CAMERA = Intrinsics(sdd=300, delx=2.0, dely=2.0, height=16, width=16)
POSE = [Pose(translation=(0, 150, 0))]


def volume_of(seed: int) -> tuple[Any, Any]:
    """A volume of a few MB, so that uploads are still running when the server dies."""
    return small_volume(seed, shape=(48, 96, 128))


def test_acknowledged_volumes_and_targets_survive_kill_9(servers: Any,
                                                         tmp_path: pathlib.Path) -> None:
    data = tmp_path / "data"
    server = servers("--data-dir", str(data))
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()

    def upload_and_render(seed: int) -> None:
        try:
            with Client(server.address) as client:
                voxels, affine = volume_of(seed)
                vid = client.upload_volume(voxels, affine)
                tid = client.upload_target(np.full((16, 16), float(seed), np.float32))
                with lock:
                    acknowledged.append((vid, tid))
                while True:  # renders until the server dies
                    client.render(vid, POSE, CAMERA)
        except grpc.RpcError:
            pass  # the server was killed

    workers = [threading.Thread(target=upload_and_render, args=(s,)) for s in range(8)]
    for w in workers:
        w.start()
    for _ in range(600):
        with lock:
            if acknowledged:
                break
        time.sleep(0.01)
    server.process.kill()  # kill -9 with uploads and renders in flight
    server.process.wait()
    for w in workers:
        w.join()
    with lock:
        survivors = list(acknowledged)
    assert survivors, "no upload was acknowledged before the kill"
    attempted = set()
    for seed in range(8):
        voxels, affine = volume_of(seed)
        attempted.add(volume_id(voxels, affine))

    restarted = servers("--data-dir", str(data))
    assert any("volumes and targets in" in line for line in restarted.log)
    with Client(restarted.address) as client:
        listed = {v.volume_id for v in client.list_volumes()}
        assert {vid for vid, _ in survivors} <= listed
        assert listed <= attempted  # nothing half-written is visible
        for vid, tid in survivors:
            losses, _, _ = client.loss_and_grad(vid, tid, POSE, CAMERA)
            assert np.isfinite(losses).all()
    assert restarted.stop() == 0


def test_a_corrupt_volume_file_is_set_aside_and_reported(servers: Any,
                                                         tmp_path: pathlib.Path) -> None:
    data = tmp_path / "data"
    server = servers("--data-dir", str(data))
    voxels, affine = small_volume(3)
    with Client(server.address) as client:
        vid = client.upload_volume(voxels, affine)
    assert server.stop() == 0
    stored = data / "volumes" / vid
    raw = bytearray(stored.read_bytes())
    raw[-1] ^= 0xFF
    stored.write_bytes(bytes(raw))

    restarted = servers("--data-dir", str(data))
    with Client(restarted.address) as client:
        with pytest.raises(grpc.RpcError) as missing:
            client.render(vid, POSE, CAMERA)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        assert "corrupt" in (missing.value.details() or "")
        assert not stored.exists()
        assert (data / "corrupt" / f"volumes-{vid}").exists()
        assert client.upload_volume(voxels, affine) == vid  # a good copy again
        client.render(vid, POSE, CAMERA)
    assert restarted.stop() == 0
    assert any("corrupt" in line for line in restarted.log + restarted.rest_of_output())

