"""Per-tenant quotas (--tokens with quota fields, or --tenant-* defaults): stored bytes, open
streams, uploads in progress and requests per second, each pushed past by one tenant while
another is not held back; refusals are RESOURCE_EXHAUSTED naming the quota, and counted."""

import hashlib
import pathlib
import threading
import time
from typing import Any

import grpc
import numpy as np
import pytest

from conftest import small_volume
from drr.v1 import volumes_pb2_grpc
from drrclient import Client, Intrinsics, Pose
from drrclient.registration import Optimizer, register_on_server
from test_budget import gauge, header_then_wait
from test_metrics import parse, scrape

CAMERA = Intrinsics(sdd=300, delx=2.0, dely=2.0, height=8, width=8)
POSE = [Pose(translation=(0, 150, 0))]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture()
def quota_server(servers: Any, tmp_path: pathlib.Path) -> Any:
    """Alice has small quotas of her own; Bob has the (unlimited) defaults but one stream."""
    small = small_volume(0)[0].astype(np.int16).nbytes
    tokens = tmp_path / "tokens"
    tokens.write_text(
        f"alice user {digest('a')} stored={small + 1000} uploads=1 rps=20\n"
        f"alice user {digest('a2')} streams=1\n"
        f"bob user {digest('b')}\n")
    return servers("--tokens", str(tokens), "--tenant-streams", "3")


def refused(call: Any) -> str:
    with pytest.raises(grpc.RpcError) as error:
        call()
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.value
    return error.value.details() or ""


def test_stored_bytes_quota(quota_server: Any) -> None:
    with Client(quota_server.address, token="a") as alice, \
            Client(quota_server.address, token="b") as bob:
        first = alice.upload_volume(*small_volume(0))
        assert "stored-bytes quota" in refused(lambda: alice.upload_volume(*small_volume(1)))
        bob.upload_volume(*small_volume(1))  # Bob is not held back
        alice.delete_volume(first)
        alice.upload_volume(*small_volume(1))  # room again
    samples = parse(scrape(quota_server))
    assert samples[("drr_tenant_quota_refusals_total",
                    '{quota="stored-bytes",tenant="alice"}')] == 1


def test_requests_and_stored_bytes_are_reported_per_tenant(quota_server: Any) -> None:
    small = small_volume(0)[0].astype(np.int16).nbytes
    before = parse(scrape(quota_server))
    with Client(quota_server.address, token="a") as alice, \
            Client(quota_server.address, token="b") as bob:
        first = alice.upload_volume(*small_volume(0))
        bob.upload_volume(*small_volume(0))  # the same content: it counts whole for each owner
        bob.upload_volume(*small_volume(1))
        for _ in range(3):
            bob.render(first, POSE, CAMERA)
        samples = parse(scrape(quota_server))
        assert samples[("drr_tenant_stored_bytes", '{tenant="alice"}')] == small
        assert samples[("drr_tenant_stored_bytes", '{tenant="bob"}')] == 2 * small
        requests = {tenant: samples[("drr_tenant_requests_total", f'{{tenant="{tenant}"}}')]
                    - before.get(("drr_tenant_requests_total", f'{{tenant="{tenant}"}}'), 0)
                    for tenant in ("alice", "bob")}
        assert requests == {"alice": 1, "bob": 5}
        alice.delete_volume(first)
        samples = parse(scrape(quota_server))
        assert samples[("drr_tenant_stored_bytes", '{tenant="alice"}')] == 0
        assert samples[("drr_tenant_stored_bytes", '{tenant="bob"}')] == 2 * small


def test_concurrent_uploads_quota(quota_server: Any) -> None:
    voxels, affine = small_volume(2)
    stub = volumes_pb2_grpc.VolumesStub(grpc.insecure_channel(quota_server.address))
    release = threading.Event()
    held = stub.Upload.future(header_then_wait(voxels, affine, release), timeout=60,
                              metadata=[("authorization", "Bearer a")])
    try:
        for _ in range(200):  # until the first upload holds its slot
            if gauge(quota_server, "drr_active_uploads") == 1:
                break
            time.sleep(0.05)
        with Client(quota_server.address, token="a") as alice:
            assert "uploads quota" in refused(lambda: alice.upload_volume(*small_volume(3)))
    finally:
        release.set()
    with pytest.raises(grpc.RpcError):
        held.result()


def test_streams_quota_per_tenant(quota_server: Any) -> None:
    with Client(quota_server.address, token="a") as alice:
        vid = alice.upload_volume(*small_volume(4))
        release = threading.Event()

        def held_frames() -> Any:
            yield alice.render_request(vid, POSE, CAMERA)
            release.wait(30)

        first = alice.render_stream(held_frames())
        assert next(first).error is None  # Alice's one stream is open
        second = list(alice.render_stream(iter([alice.render_request(vid, POSE, CAMERA)])))
        assert second[0].error is not None
        assert second[0].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "streams quota" in second[0].error.message
        release.set()
        list(first)
        # Her stream closed, she may open another.
        again = list(alice.render_stream(iter([alice.render_request(vid, POSE, CAMERA)])))
        assert again[0].error is None


def test_a_registration_holds_one_of_its_tenants_streams(quota_server: Any) -> None:
    with Client(quota_server.address, token="a") as alice:
        vid = alice.upload_volume(*small_volume(4))
        tid = alice.upload_target(alice.render(vid, POSE, CAMERA)[0, 0])
        start = [Pose(rotation=(0.05, 0, 0), translation=(0, 150, 0), parameterization="so3_log")]
        endless = Optimizer(iterations=10000, patience=10000)
        running, release = threading.Event(), threading.Event()

        class Released(Exception):
            pass

        def hold(*_: Any) -> None:
            running.set()
            release.wait(30)
            raise Released

        def first() -> None:
            with pytest.raises(Released):
                register_on_server(alice, vid, tid, start, CAMERA, optimizer=endless,
                                   on_step=hold)

        holder = threading.Thread(target=first)
        holder.start()
        assert running.wait(30)
        assert "streams quota" in refused(lambda: register_on_server(
            alice, vid, tid, start, CAMERA, optimizer=Optimizer(iterations=2)))
        release.set()
        holder.join(30)
        # Cancelled, the first ends at its next iteration and frees the stream.
        until = time.monotonic() + 10
        while True:
            try:
                found = register_on_server(alice, vid, tid, start, CAMERA,
                                           optimizer=Optimizer(iterations=2))
                break
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < until
                time.sleep(0.05)
        assert found.iterations == 2


def test_request_rate_quota(quota_server: Any) -> None:
    with Client(quota_server.address, token="a") as alice, \
            Client(quota_server.address, token="b") as bob:
        codes = []
        for _ in range(60):
            try:
                alice.list_volumes()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
                assert "requests-per-second quota" in (error.details() or "")
        # A bucket of 20 and a refill of 20/s: far from all 60 in a burst.
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 10
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        for _ in range(60):
            bob.list_volumes()  # unlimited
