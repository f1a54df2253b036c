"""bench/drr_load against a real drrserve on loopback (CPU executor): a short
closed-loop run and a short LATEST stream run give sane JSON, and
bench/load_report.py turns them into a table."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import re
import subprocess
import sys
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("DRR_BUILD_DIR", ROOT / "build"))
DRRSERVE = BUILD / "server" / "drrserve"
DRR_LOAD = BUILD / "bench" / "drr_load"
LOAD_REPORT = ROOT / "bench" / "load_report.py"


class RunningServer:
    """A drrserve process on 127.0.0.1 (as tests/python/conftest.py starts one)."""

    def __init__(self, timeout=60):
        self.process = subprocess.Popen(
            [str(DRRSERVE), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
             "--device", "cpu"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        log = []
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                self.stop()
                raise RuntimeError("drrserve did not start:\n" + "".join(log)) from None
            if line is None:
                raise RuntimeError("drrserve exited:\n" + "".join(log))
            log.append(line)
            match = re.search(r"listening on port (\d+), metrics on port (\d+)", line)
            if match:
                self.address = f"127.0.0.1:{match.group(1)}"
                break

    def _pump(self, lines):
        for line in self.process.stdout:
            lines.put(line)
        lines.put(None)

    def stop(self):
        self.process.terminate()
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture(scope="module")
def server():
    for binary in (DRRSERVE, DRR_LOAD):
        if not binary.exists():
            pytest.skip(f"{binary} is not built")
    running = RunningServer()
    yield running
    assert running.stop() == 0, "drrserve did not shut down cleanly on SIGTERM"


def run_load(server, json_path, *args):
    """Runs drr_load with `args` and --json; returns the JSON it wrote."""
    result = subprocess.run([str(DRR_LOAD), "--target", server.address, "--duration", "1",
                             "--warmup", "0.2", "--json", str(json_path), *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "throughput:" in result.stdout
    return json.loads(json_path.read_text())


def check_sane(run, clients, allowed_errors=()):
    """Throughput, counts and latency percentiles are consistent; no errors but `allowed_errors`."""
    assert run["n"] == clients
    assert len(run["per_client"]) == clients
    assert run["requests"] > 0 and run["renders_per_s"] > 0
    assert sum(run["per_client"]) == run["requests"] == run["latency_ms"]["count"]
    assert run["requests_per_s"] == pytest.approx(run["requests"] / run["duration_s"], rel=1e-3)
    latency = run["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert 0 < run["fairness_min_over_mean"] <= 1
    assert set(run["errors"]) <= set(allowed_errors), run["errors"]


def test_closed_loop_and_latest_streams(server, tmp_path):
    closed = run_load(server, tmp_path / "closed.json", "--clients", "2", "--label", "test")
    assert closed["mode"] == "closed" and closed["label"] == "test"
    check_sane(closed, 2)

    streams = run_load(server, tmp_path / "streams.json", "--streams", "2", "--stream-mode",
                       "latest", "--stream-fps", "50", "--label", "test")
    assert streams["mode"] == "stream" and streams["stream_mode"] == "latest"
    check_sane(streams, 2, allowed_errors=("ABORTED", "DEADLINE_EXCEEDED"))

    report = subprocess.run([sys.executable, str(LOAD_REPORT), str(tmp_path / "closed.json"),
                             str(tmp_path / "streams.json"), "--png", str(tmp_path / "load.png")],
                            capture_output=True, text=True, timeout=60, check=True)
    rows = [line for line in report.stdout.splitlines() if line.startswith("| test |")]
    assert [row.split("|")[2].strip() for row in rows] == ["closed", "stream"]


def test_unreachable_server_fails_clearly(tmp_path):
    if not DRR_LOAD.exists():
        pytest.skip(f"{DRR_LOAD} is not built")
    result = subprocess.run([str(DRR_LOAD), "--target", "127.0.0.1:1", "--duration", "1",
                             "--json", str(tmp_path / "none.json")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "UNAVAILABLE: cannot connect to 127.0.0.1:1" in result.stderr
    assert not (tmp_path / "none.json").exists()
