"""Faults a server meets in service, provoked for real: the disk under --data-dir filling up while
an upload is written (a tmpfs of its own, in a private mount namespace), and clients that stop
reading their stream."""

import hashlib
import os
import pathlib
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from conftest import small_volume
from drr.v1 import renderer_pb2, renderer_pb2_grpc, volumes_pb2, volumes_pb2_grpc
from drrclient import Client, Intrinsics, Pose, RenderOptions
from drrclient.volume import as_wire_voxels, canonical_header_bytes, header_proto
from test_metrics import parse, scrape
from test_soak import process_state

# Mounts a 16 MiB tmpfs on $1 and runs the rest of the command line there (exec, so the server
# keeps the process id); a helper beside it fills that disk when $2/fill appears, and empties it
# again when $2/free appears (each waited for at most 60 s), saying so with $2/full and $2/freed.
FILLER = r"""
dir=$1 signals=$2
shift 2
mount -t tmpfs -o size=16m tmpfs "$dir" || exit 97
(
  wait_for() {
    for _ in $(seq 600); do [ -e "$signals/$1" ] && return 0; sleep 0.1; done
    return 1
  }
  wait_for fill && { dd if=/dev/zero of="$dir/filler" bs=64k 2>/dev/null; touch "$signals/full"; }
  wait_for free && { rm -f "$dir/filler"; touch "$signals/freed"; }
) &
exec "$@"
"""
PRIVATE_MOUNT = ["unshare", "--user", "--map-root-user", "--mount"]
CAMERA = Intrinsics(sdd=300, delx=2.0, dely=2.0, height=16, width=16)
POSE = Pose(translation=(0, 150, 0))


def private_mounts_work(directory: pathlib.Path) -> bool:
    probe = subprocess.run([*PRIVATE_MOUNT, "mount", "-t", "tmpfs", "tmpfs", str(directory)],
                           capture_output=True, check=False)
    return probe.returncode == 0


def wait_for_file(path: pathlib.Path) -> None:
    for _ in range(300):
        if path.exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not appear")


def chunked_upload(voxels: Any, affine: Any, between: Any) -> Iterator[volumes_pb2.UploadVolumeChunk]:
    """An upload in 64 KiB chunks that calls ``between()`` after the second chunk."""
    array = as_wire_voxels(voxels)
    header = header_proto(array, affine)
    data = array.tobytes()
    digest = hashlib.sha256(canonical_header_bytes(header) + data).hexdigest()
    yield volumes_pb2.UploadVolumeChunk(header=header)
    for n, start in enumerate(range(0, len(data), 1 << 16)):
        if n == 2:
            between()
        yield volumes_pb2.UploadVolumeChunk(data=data[start:start + (1 << 16)])
    yield volumes_pb2.UploadVolumeChunk(digest=digest)


def test_a_disk_that_fills_during_an_upload_refuses_it_and_the_server_goes_on(
        servers: Any, tmp_path: pathlib.Path) -> None:
    data, signals = tmp_path / "data", tmp_path / "signals"
    data.mkdir()
    signals.mkdir()
    if not private_mounts_work(data):
        pytest.skip("no private mount namespace here (unshare --user --mount refused)")
    server = servers("--data-dir", str(data),
                     prefix=[*PRIVATE_MOUNT, "bash", "-c", FILLER, "filler", str(data),
                             str(signals)])
    stored_voxels, affine = small_volume(1)
    big = np.random.default_rng(2).integers(-1000, 1000, (64, 64, 128)).astype(np.int16)  # 1 MiB
    with Client(server.address) as client:
        stored = client.upload_volume(stored_voxels, affine)

        def fill_the_disk() -> None:
            (signals / "fill").touch()
            wait_for_file(signals / "full")

        volumes = volumes_pb2_grpc.VolumesStub(grpc.insecure_channel(server.address))
        with pytest.raises(grpc.RpcError) as refused:
            volumes.Upload(chunked_upload(big, affine, fill_the_disk), timeout=60)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "cannot keep data on its disk (No space left on device)" in refused.value.details()

        # Full, it still serves what it has, and refuses what it cannot keep.
        assert [v.volume_id for v in client.list_volumes()] == [stored]
        assert np.isfinite(client.render(stored, [POSE], CAMERA)).all()
        with pytest.raises(grpc.RpcError) as reserved:  # at its header now: no room to reserve
            client.upload_volume(big, affine)
        assert reserved.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        # With room again, the same upload goes through and renders.
        (signals / "free").touch()
        wait_for_file(signals / "freed")
        again = client.upload_volume(big, affine)
        assert sorted(v.volume_id for v in client.list_volumes()) == sorted([stored, again])
        assert np.isfinite(client.render(again, [POSE], CAMERA)).all()
    assert server.process.poll() is None


def big_frames(vid: str, count: int) -> Iterator[renderer_pb2.RenderRequest]:
    """``count`` frames of 256 x 256 float32 images (256 KiB each)."""
    for f in range(count):
        request = Client.render_request(
            vid, [Pose(rotation=(f % 30, 0, 0), translation=(0, 150, 0))],
            Intrinsics(sdd=300, delx=0.2, dely=0.2, height=256, width=256),
            RenderOptions(n_samples=16))
        request.frame_id = f
        yield request


def test_a_client_that_stops_reading_its_stream_holds_bounded_memory_and_delays_no_one(
        servers: Any) -> None:
    server = servers()
    pid = server.process.pid
    frames = 400  # 100 MiB of images, were the server to render ahead of its reader
    with Client(server.address) as client:
        vid = client.upload_volume(*small_volume(3))
        for _ in client.render_stream(big_frames(vid, 10)):  # warm-up: buffers, caches
            pass
        before = process_state(pid)[0]

        stalled = grpc.insecure_channel(server.address)
        responses = renderer_pb2_grpc.RendererStub(stalled).RenderStream(big_frames(vid, frames))
        time.sleep(3)  # rendering until the stream's flow control stops the server

        # Everyone else is served meanwhile, promptly.
        for _ in range(10):
            started = time.monotonic()
            client.render(vid, [POSE], CAMERA)
            assert time.monotonic() - started < 5
        held = process_state(pid)[0] - before
        # (AddressSanitizer's quarantine holds freed memory on purpose: RSS means nothing there.)
        if os.environ.get("DRR_SANITIZED") != "1":
            assert held < 40, f"the server holds {held:.1f} MiB for a client that does not read"

        # The client reads again: every frame is there, in order.
        assert [r.frame_id for r in responses] == list(range(frames))
        stalled.close()

        # A client that never reads and goes away leaves nothing behind.
        gone = grpc.insecure_channel(server.address)
        never_read = renderer_pb2_grpc.RendererStub(gone).RenderStream(big_frames(vid, frames))
        time.sleep(1)
        gone.close()
        del never_read
        for _ in range(100):
            if parse(scrape(server)).get(("drr_active_streams", ""), 0) == 0:
                break
            time.sleep(0.1)
        assert parse(scrape(server)).get(("drr_active_streams", ""), 0) == 0
    assert server.process.poll() is None

