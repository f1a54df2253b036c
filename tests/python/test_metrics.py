"""/metrics of the running server: promtool's checks and ours."""

import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from conftest import ROOT, small_volume
from drr.v1 import renderer_pb2, renderer_pb2_grpc
from drrclient import Intrinsics, Pose, RenderOptions

SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def scrape(server):
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def parse(text):
    """{(name, labels): value} for every sample; asserts each series is unique."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SERIES.match(line)
        assert match, f"unparsable line: {line!r}"
        key = (match.group(1), match.group(2) or "")
        assert key not in samples, f"duplicate series {key}"
        samples[key] = float(match.group(3))
    return samples


@pytest.fixture()
def exercised(server, client):
    voxels, affine = small_volume(7)
    vid = client.upload_volume(voxels, affine)
    small = Intrinsics(height=16, width=16)
    client.render(vid, [Pose(), Pose(rotation=(30, 0, 0))], small)
    with pytest.raises(grpc.RpcError):
        client.render("f" * 64, [Pose()], small)
    return scrape(server)


def test_promtool_accepts_the_exposition(exercised):
    candidates = [os.environ.get("PROMTOOL", ""), shutil.which("promtool") or "",
                  str(ROOT / ".tools" / "bin" / "promtool")]
    promtool = next((c for c in candidates if os.path.isfile(c)), None)
    assert promtool, "promtool is missing: scripts/setup.sh installs it into .tools/bin"
    result = subprocess.run([promtool, "check", "metrics"], input=exercised,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_histograms_are_consistent_and_series_unique(exercised):
    samples = parse(exercised)
    buckets = defaultdict(list)
    for (name, labels), value in samples.items():
        if name.endswith("_bucket"):
            le = re.search(r'le="([^"]+)"', labels).group(1)
            rest = re.sub(r',?le="[^"]+"', "", labels).replace("{,", "{")
            buckets[(name[: -len("_bucket")], rest)].append((float(le), value))
    assert buckets, "no histogram in the exposition"
    for (family, labels), points in buckets.items():
        points.sort()
        counts = [count for _, count in points]
        assert counts == sorted(counts), f"{family}{labels} buckets not cumulative"
        assert points[-1][0] == float("inf")
        count_labels = labels if labels != "{}" else ""
        assert points[-1][1] == samples[(family + "_count", count_labels)]


def test_requests_poses_and_volumes_are_counted(exercised):
    samples = parse(exercised)
    assert samples[("drr_requests_total", '{code="OK",method="Render"}')] >= 1
    assert samples[("drr_requests_total", '{code="NOT_FOUND",method="Render"}')] >= 1
    assert samples[("drr_requests_total", '{code="OK",method="Upload"}')] >= 1
    assert samples[("drr_poses_rendered_total", "")] >= 2
    assert samples[("drr_volume_cache_volumes", "")] >= 1
    assert any(name == "drr_build_info" for name, _ in samples)


def queue_behind_a_slow_render(server: Any, client: Any, code: str,
                               give_up: Callable[[Any, renderer_pb2.RenderRequest], None]) -> None:
    """Keeps the one engine worker busy with an 8-pose render of several seconds, has ``give_up``
    send a small request behind it and abandon it, then checks /metrics: one more Render answered
    with ``code`` and only the slow request's 8 poses rendered. The slow render samples rays clipped
    to the volume, so that all its 8000 samples per ray are marched: with samples spread over the
    whole segment it took 0.57 s on the vectorised CPU path of an AVX-512 host, too close to the
    0.5 s the test waits for it to start."""
    voxels, affine = small_volume(23)
    vid = client.upload_volume(voxels, affine)
    stub = renderer_pb2_grpc.RendererStub(grpc.insecure_channel(server.address))

    def request(size: int, samples: int, batch: int = 1,
                sampling: str = "segment") -> renderer_pb2.RenderRequest:
        return client.render_request(vid, [Pose(translation=(0, 150, 0))] * batch,
                                     Intrinsics(sdd=300, delx=30 / size, dely=30 / size,
                                                height=size, width=size),
                                     RenderOptions(n_samples=samples, sampling=sampling))

    answered = ("drr_requests_total", f'{{code="{code}",method="Render"}}')
    poses = ("drr_poses_rendered_total", "")
    before = parse(scrape(server))
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(stub.Render, request(300, 8000, batch=8, sampling="clipped"))
        time.sleep(0.5)  # the slow render has started on the one worker
        give_up(stub, request(8, 10))
        slow.result(timeout=300)
    for _ in range(100):  # the worker answers the abandoned request just after the slow one
        after = parse(scrape(server))
        if after.get(answered, 0) > before.get(answered, 0):
            break
        time.sleep(0.05)
    assert after.get(answered, 0) == before.get(answered, 0) + 1
    assert after[poses] - before.get(poses, 0) == 8  # the slow request's poses only


def test_a_request_whose_deadline_passes_in_the_queue_is_not_rendered(server, client):
    """The queued request's 50 ms deadline passes: DEADLINE_EXCEEDED, not rendered."""

    def time_out(stub: Any, request: renderer_pb2.RenderRequest) -> None:
        with pytest.raises(grpc.RpcError) as err:
            stub.Render(request, timeout=0.05)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    queue_behind_a_slow_render(server, client, "DEADLINE_EXCEEDED", time_out)


def test_a_request_its_client_cancels_in_the_queue_is_not_rendered(server, client):
    """The client cancels the queued request: CANCELLED, not rendered."""

    def cancel(stub: Any, request: renderer_pb2.RenderRequest) -> None:
        queued = stub.Render.future(request)
        time.sleep(0.2)  # the request has reached the server's queue
        assert queued.cancel()

    queue_behind_a_slow_render(server, client, "CANCELLED", cancel)
