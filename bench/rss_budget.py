"""Peak resident memory of a drrserve under uploads and renders, against its --memory-budget
(issue 8: "No request, and no mix of uploads and streams, takes RSS above the budget + 10 %").

    .venv/bin/python bench/rss_budget.py [--budget-mib 256] [--duration 30] [--json OUT.json]
                                         [DRRSERVE]
    .venv/bin/python bench/rss_budget.py --help

DRRSERVE (default build/server/drrserve) is first copied into a temporary directory, and the
copy is run (so a rebuild of the build tree cannot change it under the benchmark) as

    drrserve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --device cpu
             --memory-budget BYTES --data-dir TMP/data [--cpu-threads N]

with its stdout and stderr in TMP/server.stdout and TMP/server.stderr. Its idle RSS (VmRSS of
/proc/PID/status) is read once it listens. Then, for --duration seconds, at once:

- --uploads threads each upload, again and again, a random int16 volume of --shape (40 MiB by
  default; one volume per thread, its first voxels stamped with a counter so that every upload
  has its own id) with an oblique anisotropic affine; the benchmark keeps at most --keep
  uploaded volumes and deletes the oldest beyond them. RESOURCE_EXHAUSTED (the budget or the
  concurrent-upload limit is full) is an expected refusal, counted apart from errors.
- --renders threads each render --batch poses of --image² pixels of a random kept volume, half
  of them (by default) over RenderStream with up to --stream-depth frames in flight, the others
  with unary Render calls. RESOURCE_EXHAUSTED and NOT_FOUND (the volume was deleted) are
  expected refusals.
- a sampler reads VmRSS and VmHWM every --rss-interval s and the server's /metrics gauge
  drr_memory_used_bytes (summed over its use labels) every --metrics-interval s.

Prints, and with --json writes: the budget, the idle RSS, the peak RSS (the largest VmRSS
sampled and the final VmHWM, which also covers start-up), peak - idle, peak / budget and
(peak - idle) / budget against the 1.1 limit, the most budgeted bytes /metrics showed (in all
and by use), and the counts of uploads and renders answered, refused and failed (by status
code). The server is then stopped with SIGTERM and the temporary directory removed (kept, and
named, with --keep-temp or when the server did not exit cleanly).

Needs the drrclient package and the generated stubs (drr.v1) on the path, as the Python tests
do; both are in the project venv (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from drr.v1 import renderer_pb2
from drrclient import Client, Intrinsics, Pose, RenderOptions

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = ROOT / "build" / "server" / "drrserve"
MIB = 1 << 20
# The limit: peak RSS at most the budget + 10 %.
LIMIT = 1.1
# Answers the benchmark provokes on purpose: a full budget (or upload limit), a deleted volume.
EXPECTED_UPLOAD = {grpc.StatusCode.RESOURCE_EXHAUSTED}
EXPECTED_RENDER = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.NOT_FOUND}
SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")
# The oblique anisotropic voxel->world affine of the tests' small_volume (mm).
AFFINE = np.array([[-1.5, 0.1, 0.0, 20.0], [0.0, -1.2, 0.2, 15.0], [0.05, 0.0, 2.0, -30.0], [0, 0, 0, 1]])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and the parts of VmRSS (RssAnon, RssFile, RssShmem) of process ``pid``,
    bytes; empty once it has exited."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "RssShmem:")):
                    name, value = line.split(":", 1)
                    values[name] = int(value.split()[0]) * 1024  # kB
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return values


class Server:
    """A copy of drrserve running on loopback, its output in files of ``tmp``."""

    def __init__(self, binary: Path, tmp: Path, budget: int, cpu_threads: int | None):
        self.binary = tmp / "drrserve"
        shutil.copy2(binary, self.binary)
        self.stdout_path = tmp / "server.stdout"
        self.stderr_path = tmp / "server.stderr"
        command = [
            str(self.binary),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--device",
            "cpu",
            "--memory-budget",
            str(budget),
            "--data-dir",
            str(tmp / "data"),
        ]
        if cpu_threads is not None:
            command += ["--cpu-threads", str(cpu_threads)]
        self.command = command
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err)
        deadline = time.monotonic() + 60
        while True:
            match = re.search(r"listening on port (\d+), metrics on port (\d+)", self.stdout_path.read_text())
            if match:
                self.port, self.metrics_port = int(match.group(1)), int(match.group(2))
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"drrserve did not start:\n{self.output()}")
            time.sleep(0.05)
        self.address = f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def metrics(self) -> dict[tuple[str, str], float]:
        """{(name, labels): value} of every sample /metrics shows."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples: dict[tuple[str, str], float] = {}
        for line in text.splitlines():
            match = SERIES.match(line)
            if match and not line.startswith("#"):
                samples[(match.group(1), match.group(2) or "")] = float(match.group(3))
        return samples

    def output(self) -> str:
        return (
            f"--- stdout ({self.stdout_path})\n{self.stdout_path.read_text()}"
            f"--- stderr ({self.stderr_path})\n{self.stderr_path.read_text()}"
        )

    def stop(self) -> int:
        """Stops the server with SIGTERM (SIGKILL after 60 s); its exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -int(signal.SIGKILL)


@dataclass
class Counts:
    """What the server answered, shared by the load threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    messages: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, message: str = "") -> None:
        with self.lock:
            self.counts[key] += 1
            if message and key not in self.messages:
                self.messages[key] = message  # the first of its kind, for the report

    def error(self, kind: str, error: grpc.RpcError, expected: set[grpc.StatusCode]) -> bool:
        """Counts ``error`` of a ``kind`` call; True if it was an expected refusal."""
        code: grpc.StatusCode = error.code()
        refused = code in expected
        key = f"{kind}_refused_{code.name}" if refused else f"{kind}_error_{code.name}"
        self.add(key, error.details() or "")
        return refused


class Volumes:
    """The ids of the uploaded volumes the benchmark keeps (at most ``keep``), oldest first."""

    def __init__(self, keep: int):
        self.keep = keep
        self.lock = threading.Lock()
        self.ids: collections.deque[str] = collections.deque()

    def add(self, volume_id: str) -> list[str]:
        """Keeps ``volume_id``; the ids beyond ``keep``, to delete."""
        with self.lock:
            if volume_id in self.ids:
                self.ids.remove(volume_id)
            self.ids.append(volume_id)
            evicted = []
            while len(self.ids) > self.keep:
                evicted.append(self.ids.popleft())
            return evicted

    def pick(self, rng: random.Random) -> str | None:
        with self.lock:
            return rng.choice(self.ids) if self.ids else None

    def all(self) -> list[str]:
        with self.lock:
            return list(self.ids)


def upload_loop(
    address: str,
    index: int,
    shape: tuple[int, int, int],
    volumes: Volumes,
    counts: Counts,
    stop: threading.Event,
) -> None:
    """Uploads a volume of its own, stamped anew each time, until ``stop``."""
    rng = np.random.default_rng(1000 + index)
    voxels: npt.NDArray[np.int16] = rng.integers(-1000, 1500, size=shape, dtype=np.int16)
    stamp = voxels.reshape(-1)[:4]
    serial = 0
    with Client(address) as client:
        while not stop.is_set():
            serial += 1
            stamp[:] = np.frombuffer(np.int64(index << 40 | serial).tobytes(), np.int16)
            try:
                volume_id = client.upload_volume(voxels, AFFINE)
            except grpc.RpcError as error:
                if counts.error("upload", error, EXPECTED_UPLOAD):
                    stop.wait(0.2)  # the budget is full: let renders and deletes free it
                continue
            counts.add("upload_ok")
            for old in volumes.add(volume_id):
                try:
                    client.delete_volume(old)
                    counts.add("delete_ok")
                except grpc.RpcError as error:
                    counts.error("delete", error, {grpc.StatusCode.NOT_FOUND})


@dataclass(frozen=True)
class RenderLoad:
    """What each render thread asks for."""

    size: int
    batch: int
    samples: int | None
    stream_depth: int


def views(load: RenderLoad, rng: random.Random) -> tuple[list[Pose], Intrinsics, RenderOptions]:
    """``load.batch`` random views around a volume (AP, 850 mm from its centre, sdd 1020 mm),
    ``load.size``² pixels covering 410 mm."""
    pixel = 0.4 * 1024 / load.size
    poses = [
        Pose(rotation=(rng.uniform(-180, 180), rng.uniform(-20, 20), 0), translation=(0, 850, 0))
        for _ in range(load.batch)
    ]
    intrinsics = Intrinsics(sdd=1020, delx=pixel, dely=pixel, height=load.size, width=load.size)
    return poses, intrinsics, RenderOptions(n_samples=load.samples)


def unary_loop(
    address: str, index: int, load: RenderLoad, volumes: Volumes, counts: Counts, stop: threading.Event
) -> None:
    """Unary renders of random kept volumes until ``stop``."""
    rng = random.Random(index)
    with Client(address) as client:
        while not stop.is_set():
            volume_id = volumes.pick(rng)
            if volume_id is None:
                stop.wait(0.05)
                continue
            poses, intrinsics, options = views(load, rng)
            try:
                client.render(volume_id, poses, intrinsics, options)
                counts.add("render_ok")
            except grpc.RpcError as error:
                if counts.error("render", error, EXPECTED_RENDER):
                    stop.wait(0.02)


def stream_loop(
    address: str, index: int, load: RenderLoad, volumes: Volumes, counts: Counts, stop: threading.Event
) -> None:
    """RenderStream calls, up to ``load.stream_depth`` frames in flight, until ``stop``."""
    rng = random.Random(index)
    with Client(address) as client:
        while not stop.is_set():
            window = threading.Semaphore(load.stream_depth)

            def frames(
                client: Client = client, window: threading.Semaphore = window
            ) -> Iterator[renderer_pb2.RenderRequest]:
                frame_id = 0
                while not stop.is_set():
                    if not window.acquire(timeout=0.1):
                        continue
                    volume_id = volumes.pick(rng)
                    if volume_id is None:
                        window.release()
                        stop.wait(0.05)
                        continue
                    frame_id += 1
                    yield client.render_request(volume_id, *views(load, rng), frame_id=frame_id)

            try:
                for frame in client.render_stream(frames()):
                    window.release()
                    if frame.error is None:
                        counts.add("render_ok")
                    elif frame.error.code in EXPECTED_RENDER:
                        counts.add(f"render_refused_{frame.error.code.name}", frame.error.message)
                    else:
                        counts.add(f"render_error_{frame.error.code.name}", frame.error.message)
            except grpc.RpcError as error:  # the whole stream ended with an error
                counts.add("stream_ended")
                if counts.error("stream", error, EXPECTED_RENDER):
                    stop.wait(0.02)


@dataclass
class Samples:
    """What the sampler saw."""

    max_rss: int = 0
    max_rss_at_s: float = 0.0
    # RssAnon, RssFile and RssShmem at the largest VmRSS.
    max_rss_parts: dict[str, int] = field(default_factory=dict)
    max_hwm: int = 0
    max_used: float = 0.0
    max_used_at_s: float = 0.0
    max_by_use: dict[str, float] = field(default_factory=dict)
    rss_samples: int = 0
    metrics_samples: int = 0
    metrics_failures: int = 0
    died_at_s: float | None = None
    # (t s, VmRSS bytes, budgeted bytes) at each metrics scrape.
    timeline: list[tuple[float, int, float]] = field(default_factory=list)


def sample_loop(
    server: Server,
    rss_interval: float,
    metrics_interval: float,
    start: float,
    samples: Samples,
    stop: threading.Event,
    died: threading.Event,
) -> None:
    """Reads VmRSS / VmHWM and /metrics until ``stop``; sets ``died`` if the server exits."""
    next_scrape = 0.0
    while not stop.is_set():
        now = time.monotonic() - start
        status = proc_status(server.pid)
        if not status or not server.alive():
            samples.died_at_s = now
            died.set()
            return
        samples.rss_samples += 1
        rss = status.get("VmRSS", 0)
        if rss > samples.max_rss:
            samples.max_rss, samples.max_rss_at_s = rss, now
            samples.max_rss_parts = {k: v for k, v in status.items() if k.startswith("Rss")}
        samples.max_hwm = max(samples.max_hwm, status.get("VmHWM", 0))
        if now >= next_scrape:
            next_scrape = now + metrics_interval
            try:
                metrics = server.metrics()
            except OSError:
                samples.metrics_failures += 1
            else:
                samples.metrics_samples += 1
                by_use = {
                    labels: value
                    for (name, labels), value in metrics.items()
                    if name == "drr_memory_used_bytes"
                }
                used = sum(by_use.values())
                if used > samples.max_used:
                    samples.max_used, samples.max_used_at_s = used, now
                for labels, value in by_use.items():
                    use = labels.removeprefix('{use="').removesuffix('"}')
                    samples.max_by_use[use] = max(samples.max_by_use.get(use, 0.0), value)
                samples.timeline.append((round(now, 3), rss, used))
        stop.wait(rss_interval)


def run(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Any], Server]:
    """Starts the server in ``tmp``, loads it for ``args.duration`` s, stops it; the results."""
    budget = int(args.budget_mib * MIB)
    server = Server(Path(args.server), tmp, budget, args.cpu_threads)
    try:
        return measure(args, server, budget), server
    finally:
        server.stop()


def measure(args: argparse.Namespace, server: Server, budget: int) -> dict[str, Any]:
    """Loads ``server`` for ``args.duration`` s, then stops it; the results."""
    time.sleep(args.settle)
    idle = proc_status(server.pid)
    idle_rss = idle.get("VmRSS", 0)
    print(
        f"drrserve pid {server.pid} on {server.address}; budget {budget / MIB:.0f} MiB; "
        f"idle RSS {idle_rss / MIB:.1f} MiB",
        flush=True,
    )

    shape = tuple(int(v) for v in args.shape.split(","))
    if len(shape) != 3:
        raise SystemExit(f"--shape takes D,H,W, got {args.shape}")
    volume_shape = (shape[0], shape[1], shape[2])
    load = RenderLoad(args.image, args.batch, args.samples, args.stream_depth)
    volumes = Volumes(args.keep)
    counts = Counts()
    stop, sampler_stop, died = threading.Event(), threading.Event(), threading.Event()
    samples = Samples()
    start = time.monotonic()
    sampler = threading.Thread(
        target=sample_loop,
        daemon=True,
        args=(server, args.rss_interval, args.metrics_interval, start, samples, sampler_stop, died),
    )
    sampler.start()
    workers = [
        threading.Thread(
            target=upload_loop, daemon=True, args=(server.address, i, volume_shape, volumes, counts, stop)
        )
        for i in range(args.uploads)
    ]
    for i in range(args.renders):
        streaming = args.render_mode == "stream" or (args.render_mode == "mix" and i % 2 == 0)
        target = stream_loop if streaming else unary_loop
        workers.append(
            threading.Thread(
                target=target, daemon=True, args=(server.address, i, load, volumes, counts, stop)
            )
        )
    for worker in workers:
        worker.start()
    died.wait(args.duration)
    stop.set()
    load_s = time.monotonic() - start
    for worker in workers:
        worker.join(timeout=180)
    stuck = sum(worker.is_alive() for worker in workers)
    sampler_stop.set()
    sampler.join()

    after = proc_status(server.pid)
    rss_after_load = after.get("VmRSS", 0)
    hwm = max(after.get("VmHWM", 0), samples.max_hwm)
    # The budget's own view once the load stopped (the kept volumes are still stored).
    try:
        used_after = sum(v for (n, _), v in server.metrics().items() if n == "drr_memory_used_bytes")
    except OSError:
        used_after = float("nan")
    # Delete what is left, and see what the server gives back.
    with Client(server.address) as client:
        for volume_id in volumes.all():
            try:
                client.delete_volume(volume_id)
            except grpc.RpcError:
                pass
    time.sleep(1.0)
    rss_after_delete = proc_status(server.pid).get("VmRSS", 0)
    alive_at_end = server.alive()
    exit_code = server.stop()

    peak = max(samples.max_rss, hwm)
    result: dict[str, Any] = {
        "server": str(args.server),
        "command": server.command,
        "budget_bytes": budget,
        "duration_s": round(load_s, 2),
        "uploads": args.uploads,
        "renders": args.renders,
        "render_mode": args.render_mode,
        "shape": list(volume_shape),
        "volume_bytes": int(np.prod(volume_shape)) * 2,
        "image": args.image,
        "batch": args.batch,
        "samples": args.samples,
        "stream_depth": args.stream_depth,
        "keep": args.keep,
        "cpu_threads": args.cpu_threads,
        "idle_rss_bytes": idle_rss,
        "max_sampled_rss_bytes": samples.max_rss,
        "max_sampled_rss_at_s": round(samples.max_rss_at_s, 2),
        "max_sampled_rss_parts_bytes": samples.max_rss_parts,
        "vmhwm_bytes": hwm,
        "peak_rss_bytes": peak,
        "peak_minus_idle_bytes": peak - idle_rss,
        "peak_over_budget": peak / budget,
        "peak_minus_idle_over_budget": (peak - idle_rss) / budget,
        "peak_within_limit": peak <= LIMIT * budget,
        "peak_minus_idle_within_limit": peak - idle_rss <= LIMIT * budget,
        "max_budgeted_bytes": samples.max_used,
        "max_budgeted_at_s": round(samples.max_used_at_s, 2),
        "max_budgeted_by_use_bytes": samples.max_by_use,
        "budgeted_after_load_bytes": used_after,
        "rss_after_load_bytes": rss_after_load,
        "rss_after_delete_bytes": rss_after_delete,
        "rss_samples": samples.rss_samples,
        "metrics_samples": samples.metrics_samples,
        "metrics_failures": samples.metrics_failures,
        "counts": dict(sorted(counts.counts.items())),
        "first_messages": counts.messages,
        "threads_stuck": stuck,
        "server_died_at_s": samples.died_at_s,
        "server_alive_at_end": alive_at_end,
        "exit_code": exit_code,
        "timeline": samples.timeline,
    }
    return result


def report(result: dict[str, Any]) -> None:
    """Prints the results for a reader."""
    budget = result["budget_bytes"]

    def mib(key: str) -> str:
        return f"{result[key] / MIB:.1f} MiB"

    counts = result["counts"]
    print(f"budget                 {budget / MIB:.1f} MiB (limit {LIMIT} x = {LIMIT * budget / MIB:.1f} MiB)")
    print(f"idle RSS               {mib('idle_rss_bytes')}")
    print(
        f"max sampled VmRSS      {mib('max_sampled_rss_bytes')} "
        f"(at {result['max_sampled_rss_at_s']} s, {result['rss_samples']} samples; "
        + ", ".join(f"{k} {v / MIB:.1f}" for k, v in result["max_sampled_rss_parts_bytes"].items())
        + " MiB)"
    )
    print(f"final VmHWM            {mib('vmhwm_bytes')}")
    print(
        f"peak RSS               {mib('peak_rss_bytes')} = {result['peak_over_budget']:.3f} x "
        f"budget: {'within' if result['peak_within_limit'] else 'ABOVE'} budget + 10 %"
    )
    print(
        f"peak - idle            {mib('peak_minus_idle_bytes')} = "
        f"{result['peak_minus_idle_over_budget']:.3f} x budget: "
        f"{'within' if result['peak_minus_idle_within_limit'] else 'ABOVE'} budget + 10 %"
    )
    by_use = ", ".join(
        f"{use} {value / MIB:.1f}" for use, value in sorted(result["max_budgeted_by_use_bytes"].items())
    )
    print(
        f"max budgeted (metrics) {result['max_budgeted_bytes'] / MIB:.1f} MiB at "
        f"{result['max_budgeted_at_s']} s ({result['metrics_samples']} scrapes, "
        f"{result['metrics_failures']} failed); max by use, MiB: {by_use}"
    )
    print(
        f"after the load         RSS {mib('rss_after_load_bytes')}, budgeted "
        f"{result['budgeted_after_load_bytes'] / MIB:.1f} MiB; after deleting the kept volumes "
        f"RSS {mib('rss_after_delete_bytes')}"
    )
    print(
        f"uploads                ok {counts.get('upload_ok', 0)}, refused "
        f"{sum(v for k, v in counts.items() if k.startswith('upload_refused'))}"
    )
    print(
        f"renders ({result['batch']} poses)     ok {counts.get('render_ok', 0)}, refused "
        f"{sum(v for k, v in counts.items() if k.startswith(('render_refused', 'stream_refused')))}"
    )
    errors = {k: v for k, v in counts.items() if "_error_" in k}
    print(f"other errors           {errors or 'none'}")
    print(f"all counts             {counts}")
    for key, message in result["first_messages"].items():
        print(f"  first {key}: {message}")
    print(
        f"server                 died at {result['server_died_at_s']} s; "
        if result["server_died_at_s"] is not None
        else "server                 ",
        end="",
    )
    print(f"exit code {result['exit_code']} on SIGTERM; threads stuck: {result['threads_stuck']}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument(
        "server",
        nargs="?",
        default=str(DEFAULT_SERVER),
        help=f"drrserve binary (default {DEFAULT_SERVER}); a copy of it is run",
    )
    parser.add_argument("--budget-mib", type=float, default=256.0, help="--memory-budget, MiB")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--uploads", type=int, default=4, help="upload threads")
    parser.add_argument("--shape", default="80,512,512", help="D,H,W of each int16 volume")
    parser.add_argument("--keep", type=int, default=4, help="uploaded volumes kept; older ones are deleted")
    parser.add_argument("--renders", type=int, default=8, help="render threads")
    parser.add_argument(
        "--render-mode",
        choices=["mix", "stream", "unary"],
        default="mix",
        help="RenderStream, unary Render, or both (alternate threads)",
    )
    parser.add_argument("--image", type=int, default=128, help="image height and width, pixels")
    parser.add_argument("--batch", type=int, default=4, help="poses per request")
    parser.add_argument("--samples", type=int, default=None, help="samples per ray (default: the server's)")
    parser.add_argument("--stream-depth", type=int, default=4, help="frames in flight on each stream")
    parser.add_argument("--cpu-threads", type=int, default=None, help="drrserve --cpu-threads")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds between start and the idle RSS reading"
    )
    parser.add_argument("--rss-interval", type=float, default=0.02, help="VmRSS sampling, s")
    parser.add_argument("--metrics-interval", type=float, default=0.2, help="/metrics sampling, s")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument(
        "--keep-temp",
        action="store_true",
        help="keep the temporary directory (the binary, data, server output)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rss_budget-"))
    keep = args.keep_temp
    try:
        result, server = run(args, tmp)
        report(result)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        clean = result["exit_code"] == 0 and result["server_died_at_s"] is None
        if not clean:
            keep = True
            print(f"drrserve did not exit cleanly:\n{server.output()}", file=sys.stderr)
        return 0 if clean else 1
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
