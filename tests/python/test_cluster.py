"""Three drrserve replicas (each with its own --data-dir, --require-volume-header) behind HAProxy
(Debian's, with deploy/haproxy/haproxy.cfg as shipped) on loopback: volumes stay on one replica,
nothing is cut by the proxy, and a replica killed mid-stream costs re-uploads, never an error."""

import os
import pathlib
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from conftest import ROOT, RunningServer, free_port, wait_until_listening
from drr.v1 import renderer_pb2, renderer_pb2_grpc
from drrclient import Client, Intrinsics, Pose, RenderOptions, RetryPolicy
from test_metrics import parse, scrape

HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
CAMERA = Intrinsics(sdd=300, delx=4.0, dely=4.0, height=16, width=16)
OPTIONS = RenderOptions(n_samples=32)
POSE = [Pose(translation=(0, 150, 0))]
VOLUMES = 50
# Patient enough for a replica that is restarted (HAProxy marks it down within ~2 s).
RETRY = RetryPolicy(attempts=10, initial_backoff=0.2, max_backoff=2.0)

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None,
                                reason="haproxy is not installed (scripts/setup.sh installs it)")


def volume(seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 1500, size=(10, 12, 14)).astype(np.int16), np.diag([3.0, 3, 3, 1])


class Cluster:
    """Three replicas on fixed loopback ports and HAProxy in front of them."""

    def __init__(self, tmp: pathlib.Path):
        self.ports = [free_port() for _ in range(3)]
        self.data = [tmp / f"replica-{i}" for i in range(3)]
        self.replicas: list[RunningServer | None] = [self.start(i) for i in range(3)]
        self.proxy_port = free_port()
        env = {**os.environ, "DRR_PROXY_BIND": f"127.0.0.1:{self.proxy_port}",
               **{f"DRR_REPLICA_{i}": f"127.0.0.1:{p}" for i, p in enumerate(self.ports)}}
        self.haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(HAPROXY_CFG)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.proxy_log: list[str] = []
        threading.Thread(target=lambda: self.proxy_log.extend(self.haproxy.stdout or []),
                         daemon=True).start()
        wait_until_listening(self.proxy_port)
        self.address = f"127.0.0.1:{self.proxy_port}"

    def start(self, i: int) -> RunningServer:
        return RunningServer("--data-dir", str(self.data[i]), "--require-volume-header",
                             listen=f"127.0.0.1:{self.ports[i]}")

    def replica(self, i: int) -> RunningServer:
        running = self.replicas[i]
        assert running is not None
        return running

    def holders(self, down: int | None = None) -> dict[str, list[int]]:
        """{volume id: the replicas that store it}, asked of each replica (but ``down``)."""
        held: dict[str, list[int]] = {}
        for i in range(3):
            if i == down:
                continue
            with Client(self.replica(i).address) as direct:
                for info in direct.list_volumes():
                    held.setdefault(info.volume_id, []).append(i)
        return held

    def renders(self, i: int) -> float:
        return parse(scrape(self.replica(i))).get(
            ("drr_requests_total", '{code="OK",method="Render"}'), 0.0)

    def stop(self) -> None:
        self.haproxy.terminate()
        self.haproxy.wait(timeout=10)
        for running in self.replicas:
            if running is not None and running.process.poll() is None:
                assert running.stop() == 0


@pytest.fixture()
def cluster(tmp_path: pathlib.Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path)
    yield started
    started.stop()


def frames(vid: str, count: int, turn: threading.Semaphore | None = None
           ) -> Iterator[renderer_pb2.RenderRequest]:
    """``count`` frames; with ``turn``, each waits for it (a closed loop: a navigation system
    sends its next pose once it has the last image)."""
    for f in range(count):
        if turn is not None:
            assert turn.acquire(timeout=60)
        yield Client.render_request(vid, [Pose(rotation=(f, 0, 0), translation=(0, 150, 0))],
                                    CAMERA, OPTIONS, frame_id=f)


def test_volumes_keep_to_one_replica_and_survive_a_replica_killed_mid_stream(
        cluster: Cluster) -> None:
    with Client(cluster.address, retry=RETRY) as first, \
            Client(cluster.address, retry=RETRY) as second:
        ids = [first.upload_volume(*volume(seed)) for seed in range(VOLUMES)]
        for vid in ids:
            for client in (first, second):
                assert np.isfinite(client.render(vid, POSE, CAMERA, OPTIONS)).all()
        # Through the proxy, none cut: every volume on exactly one replica, and each replica
        # rendered exactly its own volumes (two clients each).
        held = cluster.holders()
        assert sorted(held) == sorted(ids)
        assert all(len(where) == 1 for where in held.values()), held
        home = {vid: where[0] for vid, where in held.items()}
        for i in range(3):
            assert cluster.renders(i) == 2 * sum(1 for r in home.values() if r == i)
        assert len(set(home.values())) == 3, "the ring gave some replica no volume"

        # Kill one replica while a closed-loop stream renders one of its volumes.
        victim = home[ids[0]]
        answered: list[int] = []

        def kill_after_some_frames() -> None:
            while len(answered) < 10:
                time.sleep(0.01)
            cluster.replica(victim).process.kill()

        killer = threading.Thread(target=kill_after_some_frames)
        killer.start()
        turn = threading.Semaphore(1)
        for frame in first.render_stream(frames(ids[0], 40, turn)):
            assert frame.error is None, frame.error
            assert frame.images is not None and np.isfinite(frame.images).all()
            answered.append(frame.frame_id)
            turn.release()
        killer.join()
        assert answered == list(range(40)), "the stream did not resume where it broke"
        cluster.replica(victim).process.wait(timeout=10)

        # Every call still completes: the victim's volumes are uploaded again where they now
        # land; the others have not moved.
        for vid in ids:
            assert np.isfinite(first.render(vid, POSE, CAMERA, OPTIONS)).all()
        survivors = [i for i in range(3) if i != victim]
        moved = cluster.holders(down=victim)
        for vid, where in moved.items():
            if home[vid] != victim:
                assert where == [home[vid]], f"{vid} of replica {home[vid]} moved to {where}"
            else:
                assert len(where) == 1 and where[0] in survivors

        # Restarted on its data directory, the victim serves its stored volumes again.
        cluster.replicas[victim] = cluster.start(victim)
        own = sorted(vid for vid, r in home.items() if r == victim)
        assert sorted(v.volume_id for v in Client(cluster.replica(victim).address)
                      .list_volumes()) == own
        deadline = time.monotonic() + 30
        while cluster.renders(victim) == 0 and time.monotonic() < deadline:  # HAProxy: up again
            first.render(own[0], POSE, CAMERA, OPTIONS)
            time.sleep(0.2)
        for vid in own:
            assert np.isfinite(second.render(vid, POSE, CAMERA, OPTIONS)).all()
        assert cluster.renders(victim) >= len(own)
        assert sorted(v.volume_id for v in Client(cluster.replica(victim).address)
                      .list_volumes()) == own, "the restarted replica needed uploads again"


def test_nothing_is_cut_through_the_proxy(cluster: Cluster) -> None:
    """Hundreds of uploads, renders, streams and deletes through HAProxy, from clients that never
    retry:
    a server that finished a call with the client's half-close unread would have HAProxy reset
    some of them (CANCELLED, "RST_STREAM with error code 8")."""
    never_retry = RetryPolicy(attempts=1)
    failures: list[str] = []

    def work(worker: int) -> None:
        with Client(cluster.address, retry=never_retry) as client:
            for n in range(50):
                try:
                    vid = client.upload_volume(*volume(1000 + worker * 100 + n))
                    client.render(vid, POSE, CAMERA, OPTIONS)
                    if n % 5 == 0:
                        answers = list(client.render_stream(frames(vid, 5)))
                        assert [a.frame_id for a in answers] == list(range(5))
                        assert all(a.error is None for a in answers)
                    client.delete_volume(vid)
                except grpc.RpcError as error:
                    failures.append(f"{error.code().name}: {error.details()}")

    workers = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures, f"{len(failures)} of 200 cut: {failures[:3]}"


def test_a_call_without_the_volume_header_is_refused_by_a_replica_that_requires_it(
        cluster: Cluster) -> None:
    stub = renderer_pb2_grpc.RendererStub(grpc.insecure_channel(cluster.replica(0).address))
    with pytest.raises(grpc.RpcError) as refused:
        stub.Render(Client.render_request("a" * 64, POSE, CAMERA, OPTIONS))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "x-drr-volume-id" in (refused.value.details() or "")
    with pytest.raises(grpc.RpcError) as mismatched:
        stub.Render(Client.render_request("a" * 64, POSE, CAMERA, OPTIONS),
                    metadata=[("x-drr-volume-id", "b" * 64)])
    assert mismatched.value.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.skipif(shutil.which("nginx") is None,
                    reason="nginx is not installed (scripts/setup.sh installs it)")
def test_nginx_routes_each_volume_to_one_replica_too(cluster: Cluster,
                                                    tmp_path: pathlib.Path) -> None:
    """deploy/nginx/drrserve.conf, its addresses set to this cluster's, in front of it."""
    port = free_port()
    conf = (ROOT / "deploy" / "nginx" / "drrserve.conf").read_text()
    conf = conf.replace("127.0.0.1:50051", f"127.0.0.1:{port}")
    for i, replica_port in enumerate(cluster.ports):
        conf = conf.replace(f"127.0.0.1:5006{i}", f"127.0.0.1:{replica_port}")
    (tmp_path / "drrserve.conf").write_text(conf)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\ndaemon off;\n"
        "events {}\nhttp {\n  access_log off;\n"
        + "".join(f"  {kind}_temp_path {tmp_path}/{kind};\n"
                  for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  include {tmp_path}/drrserve.conf;\n}}\n")
    nginx = ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    checked = subprocess.run([*nginx, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    proxy = subprocess.Popen(nginx, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(port)
        with Client(f"127.0.0.1:{port}", retry=RetryPolicy(attempts=1)) as client:
            ids = [client.upload_volume(*volume(500 + seed)) for seed in range(20)]
            for vid in ids:
                assert np.isfinite(client.render(vid, POSE, CAMERA, OPTIONS)).all()
        held = cluster.holders()
        assert all(len(held[vid]) == 1 for vid in ids), held
        assert len({held[vid][0] for vid in ids}) > 1, "nginx sent every volume to one replica"
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
