"""SIGTERM drains drrserve: health turns NOT_SERVING and new calls are refused at once, work in
flight finishes within --drain-timeout, then what is left is cancelled and the process exits."""

import queue
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from conftest import RunningServer, small_volume
from drr.v1 import renderer_pb2, renderer_pb2_grpc, volumes_pb2, volumes_pb2_grpc
from drrclient import Client, Intrinsics, Pose, RenderOptions
from drrclient.volume import as_wire_voxels, header_proto

NOT_SERVING = b"\x08\x02"


def render_request(client: Client, vid: str, size: int, samples: int,
                   batch: int = 1) -> renderer_pb2.RenderRequest:
    """``batch`` views of the small volume, ``size`` pixels square, their ``samples`` per ray
    clipped to the volume so that every one is marched (with samples spread over the whole
    segment, most fall outside and the vectorised CPU path skips them)."""
    request: renderer_pb2.RenderRequest = client.render_request(
        vid, [Pose(translation=(0, 150, 0))] * batch,
        Intrinsics(sdd=300, delx=30 / size, dely=30 / size, height=size, width=size),
        RenderOptions(n_samples=samples, sampling="clipped"))
    return request


def health(channel: grpc.Channel) -> bytes:
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    answer: bytes = check(b"", timeout=5)
    return answer


def exit_of(server: RunningServer, timeout: float) -> tuple[int, float]:
    """The server's exit code and how long after this call it came."""
    start = time.monotonic()
    code = server.process.wait(timeout=timeout)
    return code, time.monotonic() - start


@pytest.fixture()
def draining(servers: Any) -> Any:
    """Starts a server with ``*args`` and an uploaded volume."""
    def start(*args: str) -> tuple[RunningServer, Client, str]:
        server = servers(*args)
        client = Client(server.address)
        voxels, affine = small_volume(41)
        return server, client, client.upload_volume(voxels, affine)

    return start


def test_sigterm_finishes_work_in_flight_and_refuses_new_calls(draining: Any) -> None:
    server, client, vid = draining("--drain-timeout", "60")
    channel = grpc.insecure_channel(server.address)
    stub = renderer_pb2_grpc.RendererStub(channel)
    # A stream open before the drain: its next frame is refused and it ends.
    frames: queue.Queue[renderer_pb2.RenderRequest | None] = queue.Queue()
    stream = stub.RenderStream(iter(frames.get, None))
    frames.put(render_request(client, vid, 8, 10))
    assert next(stream).status.code == 0
    with ThreadPoolExecutor(1) as pool:
        # About 5 s on one worker of an AVX-512 host: the drain happens while it renders.
        in_flight = pool.submit(stub.Render, render_request(client, vid, 300, 8000, batch=8),
                                timeout=300)
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        for _ in range(100):
            if health(channel) == NOT_SERVING:
                break
            time.sleep(0.02)
        assert health(channel) == NOT_SERVING
        with pytest.raises(grpc.RpcError) as refused:
            stub.Render(render_request(client, vid, 8, 10), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "draining" in (refused.value.details() or "")
        frames.put(render_request(client, vid, 8, 10))
        frame = next(stream)
        assert frame.status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert "draining" in frame.status.message
        with pytest.raises(grpc.RpcError) as ended:
            next(stream)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        frames.put(None)
        assert not in_flight.done()
        response = in_flight.result()
    assert len(response.images.data) == 8 * 300 * 300 * 4
    code, _ = exit_of(server, 30)
    assert code == 0
    server.stop()
    assert any("drained" in line for line in server.log + server.rest_of_output())


def test_a_half_open_upload_does_not_hold_the_drain(draining: Any) -> None:
    server, client, _ = draining("--drain-timeout", "60", "--upload-idle-timeout", "60")
    stub = volumes_pb2_grpc.VolumesStub(grpc.insecure_channel(server.address))
    voxels, affine = small_volume(43)
    release = threading.Event()

    def header_then_nothing() -> Iterator[volumes_pb2.UploadVolumeChunk]:
        array = as_wire_voxels(voxels)
        yield volumes_pb2.UploadVolumeChunk(header=header_proto(array, affine, "hu", None))
        release.wait(60)

    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(stub.Upload, header_then_nothing(), timeout=120)
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        code, seconds = exit_of(server, 30)
        release.set()
        with pytest.raises(grpc.RpcError):
            upload.result()
    assert code == 0
    # Cancelled after a second of idling once the drain began, not 60 s.
    assert seconds < 10



def test_sigterm_cancels_work_that_outlasts_the_drain_timeout(draining: Any) -> None:
    server, client, vid = draining("--drain-timeout", "1")
    stub = renderer_pb2_grpc.RendererStub(grpc.insecure_channel(server.address))
    with ThreadPoolExecutor(1) as pool:
        # Far longer than the drain timeout.
        in_flight = pool.submit(stub.Render, render_request(client, vid, 300, 8000, batch=64),
                                timeout=300)
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        code, seconds = exit_of(server, 30)
        with pytest.raises(grpc.RpcError) as cancelled:
            in_flight.result()
    assert cancelled.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert code == 0
    # The drain timeout plus the second the process allows itself, with room for a slow
    # machine to deliver the signal and reap the process.
    assert seconds < 1 + 1 + 1.5
    assert any("drain timed out" in line for line in server.log + server.rest_of_output())
