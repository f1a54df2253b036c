"""Several devices in one drrserve (--devices): two CPU executors stand in for two GPUs. Volumes
are spread over them by their ids, each renders on its own device's engine and budget, and the
metrics say so per device."""

from typing import Any

import grpc
import pytest

from conftest import RunningServer, small_volume
from drrclient import Client, Intrinsics, Pose
from test_metrics import parse, scrape

CAMERA = Intrinsics(sdd=300, delx=2.0, dely=2.0, height=8, width=8)
POSE = [Pose(translation=(0, 150, 0))]
DEVICES = ("cpu:0", "cpu:1")


def per_device(server: RunningServer, name: str) -> dict[str, float]:
    samples = parse(scrape(server))
    return {device: samples[(name, f'{{device="{device}"}}')] for device in DEVICES}


def resident_bytes(shape: tuple[int, int, int]) -> int:
    """Bytes of a float32 resident copy of a volume of ``shape``."""
    return 4 * shape[0] * shape[1] * shape[2]


def test_volumes_spread_over_the_devices_and_render_on_their_own(servers: Any) -> None:
    server = servers("--devices", "0,1", "--cpu-threads", "1")
    assert "cpu:0, cpu:1" in "".join(server.log)
    shape = (24, 28, 32)
    with Client(server.address) as client:
        ids = [client.upload_volume(*small_volume(seed, shape)) for seed in range(12)]
        volumes = per_device(server, "drr_device_volumes")
        assert sum(volumes.values()) == 12
        assert min(volumes.values()) >= 1, volumes  # both devices hold some
        for volume_id in ids:
            assert client.render(volume_id, POSE, CAMERA).shape == (1, 1, 8, 8)
    # One launch per render, each on the device its volume is placed on, whose budget holds
    # that volume's resident copy (one each: float32, no labels).
    launches = per_device(server, "drr_device_launches_total")
    assert launches == volumes
    assert per_device(server, "drr_device_poses_total") == volumes
    used = per_device(server, "drr_device_memory_used_bytes")
    assert used == {d: volumes[d] * resident_bytes(shape) for d in DEVICES}
    budget = per_device(server, "drr_device_memory_budget_bytes")
    assert budget["cpu:0"] == budget["cpu:1"] > 0
    assert per_device(server, "drr_device_queue_depth") == {d: 0 for d in DEVICES}


def test_a_device_budget_bounds_its_resident_copies(servers: Any) -> None:
    small, large = (24, 28, 32), (40, 48, 48)
    # Room on each device for two small copies (86 KB each), not for one large one (369 KB).
    server = servers("--devices", "0,1", "--device-memory-budget", "200000")
    with Client(server.address) as client:
        ids = [client.upload_volume(*small_volume(seed, small)) for seed in range(8)]
        big = client.upload_volume(*small_volume(99, large))
        with pytest.raises(grpc.RpcError) as refused:
            client.render(big, POSE, CAMERA)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "(--device-memory-budget)" in refused.value.details()
        # Four small volumes a device on average: each render makes room from its device's
        # idle copies, and every render succeeds.
        for volume_id in ids * 2:
            assert client.render(volume_id, POSE, CAMERA).shape == (1, 1, 8, 8)
    used = per_device(server, "drr_device_memory_used_bytes")
    assert all(0 < used[d] <= 200000 for d in DEVICES), used
    evictions = parse(scrape(server))[("drr_volume_cache_events_total", '{event="eviction"}')]
    assert evictions >= 8 - 2 * 2


@pytest.mark.parametrize("devices", ["0,0", "x", "-1", "64"])
def test_a_malformed_device_list_stops_the_server(devices: str) -> None:
    with pytest.raises(RuntimeError, match="--devices"):
        RunningServer("--devices", devices, timeout=20)


def test_cpu_threads_past_the_bound_in_all_stop_the_server() -> None:
    with pytest.raises(RuntimeError, match="--cpu-threads 512 for each of 4 CPU executors is 2048"):
        RunningServer("--devices", "0,1,2,3", "--cpu-threads", "512", timeout=20)


def test_a_restarted_server_places_its_stored_volumes_as_before(servers: Any, tmp_path: Any) -> None:
    args = ("--devices", "0,1", "--data-dir", str(tmp_path))
    first = servers(*args)
    with Client(first.address) as client:
        ids = [client.upload_volume(*small_volume(seed)) for seed in range(6)]
    placed = per_device(first, "drr_device_volumes")
    assert first.stop() == 0
    again = servers(*args)
    assert per_device(again, "drr_device_volumes") == placed  # before any call
    with Client(again.address) as client:
        for volume_id in ids:
            client.render(volume_id, POSE, CAMERA)
    assert per_device(again, "drr_device_launches_total") == placed
