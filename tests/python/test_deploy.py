"""deploy/ as shipped: the Grafana dashboard's and the Prometheus rules' queries are valid PromQL
over metrics the server really exports, the HAProxy configurations are valid, and the Kubernetes
manifests validate against the API schemas (offline), pass yamllint and agree with drrserve's
flags and HAProxy's configuration."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

from conftest import DRRSERVE, ROOT

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


REPLICAS = {"DRR_PROXY_BIND": "127.0.0.1:1", "DRR_REPLICA_0": "127.0.0.1:2",
            "DRR_REPLICA_1": "127.0.0.1:3", "DRR_REPLICA_2": "127.0.0.1:4"}


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
@pytest.mark.parametrize("config,env", [
    ("haproxy.cfg", REPLICAS),
    ("haproxy.cfg", {**REPLICAS, "DRR_PROXY_TLS": "ssl crt {PEM} alpn h2"}),
    ("metrics-tls.cfg", {"DRR_METRICS_BIND": "127.0.0.1:1", "DRR_METRICS_PEM": "{PEM}",
                         "DRR_METRICS_CLIENT_CA": "{CA}", "DRR_METRICS_VERIFY": "required",
                         "DRR_METRICS_BACKEND": "127.0.0.1:2"}),
])
def test_haproxy_configurations_are_valid(config: str, env: dict[str, str],
                                          tmp_path: pathlib.Path) -> None:
    # (haproxy -c reads the certificate files too: give it real ones.)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", tmp_path / "k.pem",
                    "-out", tmp_path / "c.pem", "-days", "1", "-subj", "/CN=t"],
                   check=True, capture_output=True)
    (tmp_path / "pem").write_bytes((tmp_path / "c.pem").read_bytes()
                                   + (tmp_path / "k.pem").read_bytes())
    env = {name: value.format(PEM=tmp_path / "pem", CA=tmp_path / "c.pem")
           for name, value in env.items()}
    checked = subprocess.run(["haproxy", "-c", "-f", str(DEPLOY / "haproxy" / config)],
                             env={**os.environ, **env}, capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def venv_tool(name: str) -> str:
    tool = pathlib.Path(sys.executable).parent / name
    if not tool.exists():
        pytest.skip(f"{name} is not in the venv (requirements-dev.txt; scripts/setup.sh)")
    return str(tool)


def manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_kubernetes_manifests_validate_against_the_api_schemas(tmp_path: pathlib.Path) -> None:
    validate = venv_tool("kubernetes-validate")
    files = sorted(str(p) for p in (DEPLOY / "k8s").glob("*.yaml"))
    checked = subprocess.run([validate, "-k", "1.29.0", "--strict", "--quiet", *files],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The check can fail: a misspelt field is refused.
    broken = (DEPLOY / "k8s" / "statefulset.yaml").read_text().replace("serviceName", "servceName")
    (tmp_path / "broken.yaml").write_text(broken)
    refused = subprocess.run([validate, "-k", "1.29.0", "--strict", "--quiet",
                              str(tmp_path / "broken.yaml")], capture_output=True, check=False)
    assert refused.returncode != 0


def test_deploy_yaml_is_lint_clean() -> None:
    checked = subprocess.run([venv_tool("yamllint"), "-c", str(DEPLOY / ".yamllint.yaml"),
                              str(DEPLOY)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_manifests_agree_with_the_server_and_the_proxy() -> None:
    by_kind = {(m["kind"], m["metadata"]["name"]): m for m in manifests()}
    pod = by_kind[("StatefulSet", "drrserve")]["spec"]["template"]["spec"]
    server = pod["containers"][0]
    # It runs drrserve itself (the image's entrypoint passes --listen too: twice is refused).
    assert server["command"] == ["drrserve"]
    # Every flag it passes is one drrserve has.
    usage = subprocess.run([str(DRRSERVE), "--help"], capture_output=True, text=True,
                           check=False).stdout
    flags = {arg.split("=")[0] for arg in server["args"]}
    assert {f for f in flags if f not in usage} == set()
    args = dict(arg.split("=", 1) for arg in server["args"] if "=" in arg)
    # The drain fits in the grace period, after the preStop pause.
    pause = int(server["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] >= int(args["--drain-timeout"]) + pause + 1
    # Probes and ports are the ones it listens on.
    grpc_port = int(args["--listen"].rsplit(":", 1)[1])
    assert {p["containerPort"] for p in server["ports"]} == {
        grpc_port, int(args["--metrics-listen"].rsplit(":", 1)[1])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["grpc"]["port"] == grpc_port
    assert "--require-volume-header" in flags
    # A full memory budget is an answer, not an OOM kill.
    limit = server["resources"]["limits"]["memory"]
    assert limit.endswith("Gi") and int(args["--memory-budget"]) < int(limit[:-2]) << 30
    # HAProxy gets every address its configuration reads.
    proxy = by_kind[("Deployment", "drrserve-proxy")]["spec"]["template"]["spec"]["containers"][0]
    wanted = set(re.findall(r"\$\{(\w+)(?:\[\*\])?\}",
                            (DEPLOY / "haproxy" / "haproxy.cfg").read_text()))
    assert wanted <= {e["name"] for e in proxy["env"]}
    replicas = by_kind[("StatefulSet", "drrserve")]["spec"]["replicas"]
    assert {n for n in wanted if n.startswith("DRR_REPLICA_")} == {
        f"DRR_REPLICA_{i}" for i in range(replicas)}
    # What the kustomization names exists.
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    named = kustomization["resources"] + [
        f for generator in kustomization["configMapGenerator"] for f in generator["files"]]
    assert [n for n in named if not (DEPLOY / n).exists()] == []
