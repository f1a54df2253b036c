"""The serving engine over gRPC: batching, LATEST streams, frame deadlines, and renders that
stop when their client gives up — seen from a client and through /metrics."""

import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from conftest import small_volume
from drr.v1 import renderer_pb2, renderer_pb2_grpc
from drrclient import Intrinsics, Pose, RenderOptions
from test_metrics import parse, scrape


@pytest.fixture()
def volume(client: Any) -> str:
    voxels, affine = small_volume(31)
    return str(client.upload_volume(voxels, affine))


def request(client: Any, vid: str, size: int, samples: int, batch: int = 1,
            frame_id: int = 0, angle: float = 0.0) -> renderer_pb2.RenderRequest:
    """A render of ``batch`` views of the small volume, ``size`` pixels square, its ``samples`` per
    ray clipped to the volume so that every one is marched."""
    r: renderer_pb2.RenderRequest = client.render_request(
        vid, [Pose(rotation=(angle, 0, 0), translation=(0, 150, 0))] * batch,
        Intrinsics(sdd=300, delx=30 / size, dely=30 / size, height=size, width=size),
        RenderOptions(n_samples=samples, sampling="clipped"))
    r.frame_id = frame_id
    return r


def slow(client: Any, vid: str, frame_id: int = 0) -> renderer_pb2.RenderRequest:
    """A render of several seconds on one worker of this machine."""
    return request(client, vid, 300, 8000, batch=8, frame_id=frame_id)


def wait_for_metric(server: Any, key: tuple[str, str], at_least: float) -> dict[Any, float]:
    """The scraped samples once ``key`` has reached ``at_least`` (or after 10 s)."""
    for _ in range(200):
        samples = parse(scrape(server))
        if samples.get(key, 0) >= at_least:
            return samples
        time.sleep(0.05)
    return samples


def test_a_running_render_stops_when_its_deadline_passes(server: Any, client: Any,
                                                          volume: str) -> None:
    stub = renderer_pb2_grpc.RendererStub(grpc.insecure_channel(server.address))
    dropped = ("drr_calls_dropped_total", '{reason="deadline"}')
    poses = ("drr_poses_rendered_total", "")
    before = parse(scrape(server))
    with pytest.raises(grpc.RpcError) as error:
        stub.Render(slow(client, volume), timeout=0.5)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    after = wait_for_metric(server, dropped, before[dropped] + 1)
    assert after[dropped] == before[dropped] + 1
    assert after[poses] == before.get(poses, 0)  # stopped, never finished
    # The worker is free again: a small render is answered at once.
    stub.Render(request(client, volume, 8, 10), timeout=10)


def frames(first: renderer_pb2.RenderRequest,
           rest: list[renderer_pb2.RenderRequest]) -> Iterator[renderer_pb2.RenderRequest]:
    """``first``, then, once the server has had time to start rendering it, ``rest``."""
    yield first
    time.sleep(0.3)
    yield from rest


def test_a_latest_stream_renders_the_newest_frame_and_counts_the_superseded(
        server: Any, client: Any, volume: str) -> None:
    first = slow(client, volume, frame_id=1)
    first.stream_mode = renderer_pb2.STREAM_MODE_LATEST
    rest = [request(client, volume, 8, 10, frame_id=f, angle=f) for f in range(2, 7)]
    superseded = ("drr_calls_dropped_total", '{reason="superseded"}')
    before = parse(scrape(server))
    answers = list(client.render_stream(frames(first, rest)))
    assert [a.frame_id for a in answers] == [1, 2, 3, 4, 5, 6]
    assert answers[0].error is None and answers[5].error is None
    for answer in answers[1:5]:  # each superseded by the next while frame 1 rendered
        assert answer.error is not None
        assert answer.error.code == grpc.StatusCode.ABORTED
        assert answer.error.message == f"superseded by frame {answer.frame_id + 1}"
    after = parse(scrape(server))
    assert after[superseded] == before[superseded] + 4


def test_a_frame_not_started_by_its_deadline_is_answered_deadline_exceeded(
        server: Any, client: Any, volume: str) -> None:
    hurried = request(client, volume, 8, 10, frame_id=2)
    hurried.frame_deadline_us = 1000
    patient = request(client, volume, 8, 10, frame_id=3)
    answers = list(client.render_stream(frames(slow(client, volume, frame_id=1),
                                               [hurried, patient])))
    assert [a.frame_id for a in answers] == [1, 2, 3]
    assert answers[0].error is None and answers[2].error is None
    assert answers[1].error is not None
    assert answers[1].error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "not rendered" in answers[1].error.message


def test_a_frame_whose_deadline_passes_while_it_renders_is_stopped(
        server: Any, client: Any, volume: str) -> None:
    hurried = slow(client, volume, frame_id=1)
    hurried.frame_deadline_us = 200_000
    after = request(client, volume, 8, 10, frame_id=2)
    answers = list(client.render_stream(iter([hurried, after])))
    assert [a.frame_id for a in answers] == [1, 2]
    assert answers[0].error is not None
    assert answers[0].error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "while it rendered" in answers[0].error.message
    assert answers[1].error is None  # the stream goes on


def test_requests_waiting_together_are_rendered_in_one_launch(server: Any, client: Any,
                                                               volume: str) -> None:
    stub = renderer_pb2_grpc.RendererStub(grpc.insecure_channel(server.address))
    calls = ("drr_batch_calls_count", "")
    before = parse(scrape(server))
    launches: queue.Queue[int] = queue.Queue()

    def small(angle: float) -> None:
        response = stub.Render(request(client, volume, 16, 20, angle=angle), timeout=120)
        launches.put(response.timings.launch_poses)

    with ThreadPoolExecutor(9) as pool:
        busy = pool.submit(stub.Render, slow(client, volume), timeout=300)
        time.sleep(0.3)  # the worker is busy; the small requests queue up
        threads = [threading.Thread(target=small, args=(a,)) for a in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        busy.result()
    sizes = [launches.get() for _ in range(6)]
    assert sizes == [6] * 6, sizes  # all six shared one launch
    after = parse(scrape(server))
    assert after[calls] == before[calls] + 2  # the slow launch and the shared one


def test_a_stream_its_client_cancels_is_counted_cancelled(server: Any, client: Any,
                                                          volume: str) -> None:
    stub = renderer_pb2_grpc.RendererStub(grpc.insecure_channel(server.address))
    cancelled = ("drr_requests_total", '{code="CANCELLED",method="RenderStream"}')
    before = parse(scrape(server))
    hold = threading.Event()

    def one_frame_then_wait() -> Iterator[renderer_pb2.RenderRequest]:
        yield request(client, volume, 8, 10, frame_id=1)
        hold.wait(30)

    call = stub.RenderStream(one_frame_then_wait())
    assert next(call).status.code == 0
    call.cancel()
    hold.set()
    after = wait_for_metric(server, cancelled, before.get(cancelled, 0) + 1)
    assert after.get(cancelled, 0) == before.get(cancelled, 0) + 1


def test_the_volume_cache_counts_its_misses_and_hits(server: Any, client: Any,
                                                     volume: str) -> None:
    miss = ("drr_volume_cache_events_total", '{event="miss"}')
    hit = ("drr_volume_cache_events_total", '{event="hit"}')
    options = RenderOptions(n_samples=10, volume_storage="bfloat16")  # a copy no test made
    before = parse(scrape(server))
    for _ in range(2):
        client.render(volume, [Pose(translation=(0, 150, 0))],
                      Intrinsics(sdd=300, delx=4, dely=4, height=8, width=8), options)
    after = parse(scrape(server))
    assert after[miss] == before[miss] + 1
    assert after[hit] >= before[hit] + 1
