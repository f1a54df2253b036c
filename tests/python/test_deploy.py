"""deploy/ as shipped: the Grafana dashboard's and the Prometheus rules' queries are valid PromQL
over metrics the server really exports, and the HAProxy configurations are valid."""

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

DEPLOY = ROOT / "deploy"
# A metric name (not part of a recording rule's level:metric:operations name).
METRIC = re.compile(r"(?<![:\w])(drr_[a-z_]+)(?![:\w])")


def promtool() -> str:
    for candidate in (os.environ.get("PROMTOOL", ""), shutil.which("promtool") or "",
                      str(ROOT / ".tools" / "bin" / "promtool")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("promtool is not installed (scripts/setup.sh fetches it)")


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "drrserve.json").read_text())
    return [target["expr"].replace("$__rate_interval", "5m")
            for panel in dashboard["panels"] for target in panel["targets"]]


def exported_families() -> set[str]:
    """The metric families drrserve registers (every one is exported once it has a series)."""
    source = (ROOT / "server" / "frontend" / "metrics.cc").read_text()
    return set(re.findall(r'\.Name\("(drr_[a-z_]+)"\)', source))


def family_of(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)


def test_dashboard_queries_are_promql_over_exported_metrics(tmp_path: pathlib.Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    # promtool parses PromQL in rule files: each query as a recording rule.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)]}]}
    (tmp_path / "dashboard.rules.json").write_text(json.dumps(rules))
    checked = subprocess.run([promtool(), "check", "rules", str(tmp_path / "dashboard.rules.json")],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    exported = exported_families()
    assert len(exported) >= 20
    unknown = {family_of(m) for q in queries for m in METRIC.findall(q)} - exported
    assert not unknown, f"the dashboard queries metrics the server does not export: {unknown}"


def test_rules_query_exported_metrics() -> None:
    text = (DEPLOY / "prometheus" / "rules.yml").read_text()
    used = {family_of(m) for m in METRIC.findall(text)}
    assert len(used) >= 6
    assert used - exported_families() == set()


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
@pytest.mark.parametrize("config,env", [
    ("haproxy.cfg", {"DRR_PROXY_BIND": "127.0.0.1:1", "DRR_REPLICA_0": "127.0.0.1:2",
                     "DRR_REPLICA_1": "127.0.0.1:3", "DRR_REPLICA_2": "127.0.0.1:4"}),
    ("metrics-tls.cfg", {"DRR_METRICS_BIND": "127.0.0.1:1", "DRR_METRICS_PEM": "PEM",
                         "DRR_METRICS_CLIENT_CA": "CA", "DRR_METRICS_VERIFY": "required",
                         "DRR_METRICS_BACKEND": "127.0.0.1:2"}),
])
def test_haproxy_configurations_are_valid(config: str, env: dict[str, str],
                                          tmp_path: pathlib.Path) -> None:
    # (haproxy -c reads the certificate files too: give it real ones.)
    if "DRR_METRICS_PEM" in env:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", tmp_path / "k.pem",
                        "-out", tmp_path / "c.pem", "-days", "1", "-subj", "/CN=t"],
                       check=True, capture_output=True)
        (tmp_path / "pem").write_bytes((tmp_path / "c.pem").read_bytes()
                                       + (tmp_path / "k.pem").read_bytes())
        env = {**env, "DRR_METRICS_PEM": str(tmp_path / "pem"),
               "DRR_METRICS_CLIENT_CA": str(tmp_path / "c.pem")}
    checked = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy" / config)],
                             env={**os.environ, **env}, capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
