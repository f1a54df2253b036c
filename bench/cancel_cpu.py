"""How much CPU a drrserve spends on a render after its client gave up (issue 8: "server CPU
after the client gave up <= 50 ms (1024² x 2000 samples)").

    .venv/bin/python bench/cancel_cpu.py [--label L] [--repeat 3] [--json OUT.json] DRRSERVE

Each repeat starts DRRSERVE (--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --device cpu
--preload-phantom), renders a small image of the preloaded phantom (so the connection and the
server's lazy set-up are done), then sends one Render of --size² pixels with --samples samples per
ray (ZXY (0, 0, 0)°, translation (0, 850, 0) mm, AP, sdd 1020 mm, delx = dely 0.4 mm) with a
--timeout s gRPC deadline. When the client gets DEADLINE_EXCEEDED the server's CPU time
(/proc/PID/stat utime + stime, all threads, in clock ticks, usually 10 ms) is read, and read
again --after s later: the difference is the CPU the server spent after its client gave up;
"busy" is when all of it but one tick had been spent. The server's idle CPU over the same span
(measured before the render) is printed beside it. Then a small render checks the server still
answers, and the server is stopped with SIGTERM.

Prints one line per repeat and the median; --json writes all of it. Needs the drrclient package
and the generated stubs (drr.v1) on the path, as the Python tests do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

import grpc

from drr.v1 import renderer_pb2, renderer_pb2_grpc
from drrclient import Client, Intrinsics, Pose, RenderOptions

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command's ")": state is field 3 of proc(5); utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / TICK


class Server:
    """A drrserve process on loopback, with the id of its preloaded phantom."""

    def __init__(self, binary: str):
        self.process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
             "--device", "cpu", "--preload-phantom"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log: list[str] = []
        self.volume_id = ""
        started = threading.Event()

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.log.append(line)
                preloaded = re.search(r"preloaded .* as volume (\S+)", line)
                if preloaded:
                    self.volume_id = preloaded.group(1)
                listening = re.search(r"listening on port (\d+), metrics on port (\d+)", line)
                if listening:
                    self.port = int(listening.group(1))
                    started.set()
            started.set()

        threading.Thread(target=pump, daemon=True).start()
        if not started.wait(60) or not hasattr(self, "port") or not self.volume_id:
            self.stop()
            raise RuntimeError("drrserve did not start:\n" + "".join(self.log))
        self.address = f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int | None:
        self.process.terminate()
        try:
            return self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def render_request(volume_id: str, size: int, samples: int) -> renderer_pb2.RenderRequest:
    """One pose of the reference geometry, ``size``² pixels of 0.4 * 1024 / size mm."""
    pixel = 0.4 * 1024 / size
    return Client.render_request(
        volume_id, [Pose(rotation=(0, 0, 0), translation=(0, 850, 0))],
        Intrinsics(sdd=1020, delx=pixel, dely=pixel, height=size, width=size),
        RenderOptions(n_samples=samples))


def measure(binary: str, size: int, samples: int, timeout: float, after: float) -> dict:
    """One repeat: CPU seconds the server spent in the ``after`` s after the client gave up."""
    server = Server(binary)
    try:
        stub = renderer_pb2_grpc.RendererStub(grpc.insecure_channel(server.address))
        stub.Render(render_request(server.volume_id, 64, 100), timeout=30)  # warm-up
        idle0 = cpu_seconds(server.pid)
        time.sleep(after)
        idle_cpu = cpu_seconds(server.pid) - idle0

        sent = time.monotonic()
        code = "OK"
        try:
            stub.Render(render_request(server.volume_id, size, samples), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code().name
        gave_up = time.monotonic()
        cpu0 = cpu_seconds(server.pid)
        # Sample the CPU time to see when the server went quiet.
        samples = [(0.0, 0.0)]
        while time.monotonic() - gave_up < after:
            time.sleep(0.05)
            samples.append((time.monotonic() - gave_up, cpu_seconds(server.pid) - cpu0))
        cpu_after = samples[-1][1]
        # When all but one clock tick of that CPU had been spent (a stray tick of an idle
        # thread later on does not count as busy).
        busy = next(t for t, cpu in samples if round((cpu_after - cpu) * TICK) <= 1)

        start = time.monotonic()
        stub.Render(render_request(server.volume_id, 64, 100), timeout=60)
        small_ms = (time.monotonic() - start) * 1e3
    finally:
        exit_code = server.stop()
    return {"code": code, "client_wait_s": gave_up - sent, "cpu_after_s": cpu_after,
            "busy_after_s": busy, "idle_cpu_s": idle_cpu,
            "small_render_after_ms": small_ms, "exit_code": exit_code}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", help="drrserve binary")
    parser.add_argument("--label", default="", help="names the server in the output")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024, help="image height and width, pixels")
    parser.add_argument("--samples", type=int, default=2000, help="samples per ray")
    parser.add_argument("--timeout", type=float, default=1.0, help="the client's deadline, s")
    parser.add_argument("--after", type=float, default=10.0,
                        help="seconds to watch the server's CPU after the client gave up")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()

    runs = []
    for i in range(args.repeat):
        run = measure(args.server, args.size, args.samples, args.timeout, args.after)
        runs.append(run)
        print(f"{args.label or args.server} #{i + 1}: {run['code']} after "
              f"{run['client_wait_s']:.3f} s; server CPU after the client gave up "
              f"{run['cpu_after_s'] * 1e3:.0f} ms (busy {run['busy_after_s']:.2f} s more; idle "
              f"CPU over {args.after:g} s: {run['idle_cpu_s'] * 1e3:.0f} ms); small render after: "
              f"{run['small_render_after_ms']:.1f} ms; exit {run['exit_code']}", flush=True)
    median = statistics.median(r["cpu_after_s"] for r in runs)
    print(f"{args.label or args.server}: median server CPU after the client gave up "
          f"{median * 1e3:.0f} ms over {len(runs)} repeats")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"label": args.label, "server": args.server, "size": args.size,
                       "samples": args.samples, "timeout_s": args.timeout, "after_s": args.after,
                       "runs": runs, "median_cpu_after_s": median}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
