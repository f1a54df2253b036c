"""Bounds on what clients make the server hold: the memory budget, concurrent uploads, and
uploads that go idle — each pushed past, with the server answering and living on."""

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from conftest import RunningServer, small_volume
from drr.v1 import volumes_pb2, volumes_pb2_grpc
from drrclient import Client
from drrclient.volume import as_wire_voxels, header_proto
from test_metrics import parse, scrape


def header_then_wait(voxels: Any, affine: Any, release: threading.Event,
                     first_chunk: bool = True) -> Iterator[volumes_pb2.UploadVolumeChunk]:
    """An upload that sends its header (and a first chunk), then waits for ``release``."""
    array = as_wire_voxels(voxels)
    yield volumes_pb2.UploadVolumeChunk(header=header_proto(array, affine, "hu", None))
    if first_chunk:
        yield volumes_pb2.UploadVolumeChunk(data=bytes(array.data.cast("B"))[:1024])
    release.wait(60)


def gauge(server: RunningServer, name: str, labels: str = "") -> float:
    return parse(scrape(server)).get((name, labels), -1.0)


def test_an_idle_upload_is_cancelled_and_frees_what_it_held(servers: Any) -> None:
    server = servers("--upload-idle-timeout", "0.5")
    stub = volumes_pb2_grpc.VolumesStub(grpc.insecure_channel(server.address))
    voxels, affine = small_volume(2)
    release = threading.Event()
    uploads = ("drr_memory_used_bytes", '{use="uploads"}')
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as ended:
        stub.Upload(header_then_wait(voxels, affine, release), timeout=30)
    release.set()
    assert ended.value.code() == grpc.StatusCode.CANCELLED
    assert time.monotonic() - start < 20  # the idle timeout, not the client's
    for _ in range(100):
        if gauge(server, "drr_active_uploads") == 0:
            break
        time.sleep(0.05)
    assert gauge(server, "drr_active_uploads") == 0
    assert gauge(server, *uploads) == 0
    with Client(server.address) as client:  # the server lives on
        assert client.upload_volume(voxels, affine)


def test_uploads_beyond_the_concurrent_limit_are_refused(servers: Any) -> None:
    server = servers("--max-concurrent-uploads", "1")
    stub = volumes_pb2_grpc.VolumesStub(grpc.insecure_channel(server.address))
    voxels, affine = small_volume(4)
    release = threading.Event()
    first = stub.Upload.future(header_then_wait(voxels, affine, release), timeout=60)
    for _ in range(100):
        if gauge(server, "drr_active_uploads") == 1:
            break
        time.sleep(0.05)
    with Client(server.address) as client:
        with pytest.raises(grpc.RpcError) as refused:
            client.upload_volume(voxels, affine)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-concurrent-uploads" in (refused.value.details() or "")
    release.set()
    with pytest.raises(grpc.RpcError):
        first.result()  # it ended without its digest
    with Client(server.address) as client:
        assert client.upload_volume(voxels, affine)


def test_the_memory_budget_refuses_an_upload_at_its_header(servers: Any) -> None:
    # Room for the small volumes of the other tests, not for 32 MiB of voxels.
    server = servers("--memory-budget", str(8 << 20))
    stub = volumes_pb2_grpc.VolumesStub(grpc.insecure_channel(server.address))
    big = np.zeros((64, 512, 512), np.int16)
    release = threading.Event()
    with pytest.raises(grpc.RpcError) as refused:
        stub.Upload(header_then_wait(big, np.eye(4), release, first_chunk=False), timeout=30)
    release.set()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--memory-budget" in (refused.value.details() or "")
    assert gauge(server, "drr_memory_budget_bytes") == 8 << 20
    with Client(server.address) as client:
        voxels, affine = small_volume(6)
        vid = client.upload_volume(voxels, affine)
        assert client.get_volume(vid).volume_id == vid
    assert 0 < gauge(server, "drr_memory_used_bytes", '{use="volumes"}') <= 8 << 20


def test_with_a_data_dir_uploads_stream_to_disk_not_memory(servers: Any,
                                                           tmp_path: Any) -> None:
    data = tmp_path / "data"
    server = servers("--data-dir", str(data), "--memory-budget", str(32 << 20))
    stub = volumes_pb2_grpc.VolumesStub(grpc.insecure_channel(server.address))
    # 8 MiB of voxels: 24 MiB to render (with its float32 μ), within the budget.
    voxels = np.zeros((16, 512, 512), np.int16)
    release = threading.Event()
    pending = stub.Upload.future(header_then_wait(voxels, np.eye(4), release), timeout=60)
    in_progress: list[Any] = []
    for _ in range(100):
        in_progress = [f for f in (data / "volumes").iterdir() if f.name.startswith(".tmp-")]
        if in_progress and in_progress[0].stat().st_size > 1024:
            break
        time.sleep(0.05)
    assert len(in_progress) == 1  # the bytes so far are on disk ...
    assert gauge(server, "drr_active_uploads") == 1
    assert gauge(server, "drr_memory_used_bytes", '{use="uploads"}') == 0  # ... not in memory
    release.set()
    with pytest.raises(grpc.RpcError):
        pending.result()  # it ended without its digest
    for _ in range(100):
        if not any((data / "volumes").iterdir()):
            break
        time.sleep(0.05)
    assert not any((data / "volumes").iterdir())  # and left nothing behind

    # A volume the budget could never render is refused at its header.
    too_big = np.zeros((64, 512, 512), np.int16)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Upload(header_then_wait(too_big, np.eye(4), release, first_chunk=False),
                    timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--memory-budget" in (refused.value.details() or "")

    with Client(server.address) as client:
        vid = client.upload_volume(voxels, np.eye(4))
        assert (data / "volumes" / vid).stat().st_size > voxels.nbytes
        assert client.get_volume(vid).voxel_bytes == voxels.nbytes
