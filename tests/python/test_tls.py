"""TLS and mutual TLS on the gRPC port and (through HAProxy) on /metrics, reflection off by
default — real handshakes against certificates made for the test with the openssl command."""

import http.client
import os
import pathlib
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from typing import Any

import grpc
import pytest

from conftest import DRRCTL, ROOT, RunningServer, free_port, small_volume, wait_until_listening
from drrclient import Client, Intrinsics, Pose

CAMERA = Intrinsics(sdd=300, delx=2.0, dely=2.0, height=8, width=8)


def openssl(*args: str | pathlib.Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def issue(pki: pathlib.Path, name: str, ca: str = "ca") -> None:
    """An EC key and a certificate for 127.0.0.1 and localhost, signed by ``ca``."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", pki / f"{name}.key", "-out", pki / f"{name}.csr", "-subj", f"/CN={name}")
    (pki / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", pki / f"{name}.csr", "-CA", pki / f"{ca}.pem",
            "-CAkey", pki / f"{ca}.key", "-CAcreateserial", "-days", "1",
            "-extfile", pki / f"{name}.ext", "-out", pki / f"{name}.pem")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> pathlib.Path:
    """A CA, a server and a client certificate it signed, and a second CA that signed nothing
    the server trusts (its "intruder" client)."""
    pki = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", pki / f"{ca}.key", "-out", pki / f"{ca}.pem", "-days", "1",
                "-subj", f"/CN={ca}")
    issue(pki, "server")
    issue(pki, "client")
    issue(pki, "intruder", ca="other-ca")
    openssl("ec", "-in", pki / "server.key", "-aes256", "-passout", "pass:secret",
            "-out", pki / "server-encrypted.key")
    return pki


def renders(client: Client) -> bool:
    voxels, affine = small_volume(3)
    vid = client.upload_volume(voxels, affine)
    images = client.render(vid, [Pose(translation=(0, 150, 0))], CAMERA)
    return images.shape == (1, 1, 8, 8)


def test_tls_serves_clients_that_trust_its_ca_and_no_plain_ones(servers: Any,
                                                                 pki: pathlib.Path) -> None:
    server = servers("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))
    with Client(server.address, tls_ca=str(pki / "ca.pem")) as client:
        assert renders(client)
    with Client(server.address) as plain, pytest.raises(grpc.RpcError) as refused:
        plain.list_volumes()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # A client trusting another CA refuses the server.
    with Client(server.address, tls_ca=str(pki / "other-ca.pem")) as wary, \
            pytest.raises(grpc.RpcError) as distrusted:
        wary.list_volumes()
    assert distrusted.value.code() == grpc.StatusCode.UNAVAILABLE
    listed = subprocess.run([str(DRRCTL), "--server", server.address, "--tls-ca",
                             str(pki / "ca.pem"), "list"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr


def test_mutual_tls_rejects_a_client_without_a_certificate_it_trusts(servers: Any,
                                                                     pki: pathlib.Path) -> None:
    server = servers("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
                     "--tls-client-ca", str(pki / "ca.pem"))
    with Client(server.address, tls_ca=str(pki / "ca.pem"), tls_cert=str(pki / "client.pem"),
                tls_key=str(pki / "client.key")) as client:
        assert renders(client)
    for cert in (None, "intruder"):
        kwargs = {} if cert is None else {"tls_cert": str(pki / f"{cert}.pem"),
                                          "tls_key": str(pki / f"{cert}.key")}
        with Client(server.address, tls_ca=str(pki / "ca.pem"), **kwargs) as client, \
                pytest.raises(grpc.RpcError) as rejected:
            client.list_volumes()
        assert rejected.value.code() == grpc.StatusCode.UNAVAILABLE, cert
    listed = subprocess.run([str(DRRCTL), "--server", server.address, "--tls-ca",
                             str(pki / "ca.pem"), "--tls-cert", str(pki / "client.pem"),
                             "--tls-key", str(pki / "client.key"), "list"],
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr


def test_a_server_refuses_to_start_with_tls_it_cannot_serve(pki: pathlib.Path) -> None:
    for args, says in [
        (["--tls-cert", str(pki / "server.pem")], "--tls-key"),
        (["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "client.key")],
         "is not the key of"),
        (["--tls-cert", str(pki / "server.key"), "--tls-key", str(pki / "server.key")],
         "not a readable PEM certificate"),
        (["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server-encrypted.key")],
         "unencrypted PEM private key"),
        (["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
          "--tls-client-ca", str(pki / "absent.pem")], "--tls-client-ca"),
    ]:
        with pytest.raises(RuntimeError, match="drrserve exited") as failed:
            RunningServer(*args)
        assert says in str(failed.value), args


def reflection_answers(address: str) -> grpc.StatusCode:
    """The status of a ServerReflection list_services request (raw bytes: field 7, empty)."""
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/"
                                     "ServerReflectionInfo")
        try:
            answers = list(call(iter([b"\x3a\x00"]), timeout=10))
        except grpc.RpcError as error:
            return error.code()
        assert answers and b"drr.v1.Renderer" in answers[0] and b"drr.v1.Volumes" in answers[0]
        return grpc.StatusCode.OK


def test_reflection_is_off_unless_asked_for(servers: Any) -> None:
    assert reflection_answers(servers().address) == grpc.StatusCode.UNIMPLEMENTED
    assert reflection_answers(servers("--reflection").address) == grpc.StatusCode.OK


def test_metrics_are_served_over_mutual_tls_by_haproxy_in_front(servers: Any,
                                                                 pki: pathlib.Path) -> None:
    """deploy/haproxy/metrics-tls.cfg as shipped: HTTPS with a client certificate only."""
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (scripts/setup.sh installs it)")
    server = servers()
    (pki / "server-combined.pem").write_bytes((pki / "server.pem").read_bytes()
                                              + (pki / "server.key").read_bytes())
    port = free_port()
    env = {**os.environ, "DRR_METRICS_BIND": f"127.0.0.1:{port}",
           "DRR_METRICS_PEM": str(pki / "server-combined.pem"),
           "DRR_METRICS_CLIENT_CA": str(pki / "ca.pem"), "DRR_METRICS_VERIFY": "required",
           "DRR_METRICS_BACKEND": f"127.0.0.1:{server.metrics_port}"}
    proxy = subprocess.Popen(["haproxy", "-db", "-f", str(ROOT / "deploy/haproxy/metrics-tls.cfg")],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"https://127.0.0.1:{port}/metrics"

        wait_until_listening(port)

        def scrape_with(context: ssl.SSLContext) -> str:
            with urllib.request.urlopen(url, context=context, timeout=10) as response:
                return str(response.read().decode())

        trusted = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        trusted.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
        assert "drr_build_info" in scrape_with(trusted)
        without_certificate = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
            scrape_with(without_certificate)
        stranger = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        stranger.load_cert_chain(str(pki / "intruder.pem"), str(pki / "intruder.key"))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
            scrape_with(stranger)
        with pytest.raises((urllib.error.URLError, ConnectionResetError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
