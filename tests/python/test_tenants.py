"""Tenants (--tokens): every call needs a valid bearer token; a tenant sees, renders and deletes
only what it uploaded (an admin sees all); shared content is stored once and deleted by its last
owner; ownership survives a restart; SIGHUP reloads the token file."""

import hashlib
import os
import pathlib
import signal
import subprocess
import time
from typing import Any

import grpc
import numpy as np
import pytest

from conftest import DRRCTL, small_volume
from drrclient import Client, FrameError, Intrinsics, Pose

CAMERA = Intrinsics(sdd=300, delx=2.0, dely=2.0, height=8, width=8)
POSE = [Pose(translation=(0, 150, 0))]
TOKENS = {"alice": "alice-secret", "bob": "bob-secret", "root": "root-secret"}


def token_file(path: pathlib.Path, tenants: dict[str, str]) -> pathlib.Path:
    lines = ["# tenant role sha256(token)"]
    for tenant, token in tenants.items():
        role = "admin" if tenant == "root" else "user"
        lines.append(f"{tenant} {role} {hashlib.sha256(token.encode()).hexdigest()}")
    path.write_text("\n".join(lines) + "\n")
    return path


def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        call()
    code: grpc.StatusCode = error.value.code()
    return code


@pytest.fixture()
def tenants(servers: Any, tmp_path: pathlib.Path) -> Any:
    """A server with three tenants' tokens and a data directory; a client per tenant."""
    tokens = token_file(tmp_path / "tokens", TOKENS)
    server = servers("--tokens", str(tokens), "--data-dir", str(tmp_path / "data"),
                     "--preload-phantom")
    clients = {name: Client(server.address, token=token) for name, token in TOKENS.items()}
    yield server, clients, tokens
    for client in clients.values():
        client.close()


def test_calls_without_a_valid_token_are_unauthenticated(tenants: Any) -> None:
    server, clients, _ = tenants
    assert any("calls need a token" in line for line in server.log)
    voxels, affine = small_volume(1)
    for token in (None, "wrong"):
        with Client(server.address, token=token) as stranger:
            assert code_of(stranger.list_volumes) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(lambda: stranger.upload_volume(voxels, affine)) == \
                grpc.StatusCode.UNAUTHENTICATED
            assert code_of(lambda: stranger.upload_target(np.ones((4, 4)))) == \
                grpc.StatusCode.UNAUTHENTICATED
            frames = list(stranger.render_stream(iter([
                stranger.render_request("0" * 64, POSE, CAMERA)])))
            assert isinstance(frames[0].error, FrameError)
            assert frames[0].error.code == grpc.StatusCode.UNAUTHENTICATED
    assert clients["alice"].list_volumes() is not None


def test_a_tenant_sees_only_its_own_and_shared_content_is_deleted_by_its_last_owner(
        tenants: Any) -> None:
    _, clients, _ = tenants
    alice, bob, root = clients["alice"], clients["bob"], clients["root"]
    # The preloaded phantom is every tenant's to render.
    phantom = [v.volume_id for v in bob.list_volumes()]
    assert len(phantom) == 1
    assert bob.render(phantom[0], POSE, CAMERA).shape == (1, 1, 8, 8)
    assert code_of(lambda: bob.delete_volume(phantom[0])) == grpc.StatusCode.PERMISSION_DENIED

    voxels, affine = small_volume(2)
    vid = alice.upload_volume(voxels, affine)
    target = alice.upload_target(np.ones((8, 8), np.float32))
    assert vid in {v.volume_id for v in alice.list_volumes()}
    assert vid not in {v.volume_id for v in bob.list_volumes()}
    assert vid in {v.volume_id for v in root.list_volumes()}
    for call in (lambda: bob.get_volume(vid), lambda: bob.render(vid, POSE, CAMERA),
                 lambda: bob.delete_volume(vid),
                 lambda: bob.loss_and_grad(phantom[0], target, POSE, CAMERA)):
        assert code_of(call) == grpc.StatusCode.NOT_FOUND  # exactly as for an unknown id
    alice.loss_and_grad(vid, target, POSE, CAMERA)

    # Bob uploads the same content (sending every byte): stored once, owned by both.
    assert bob.upload_volume(voxels, affine) == vid
    alice.delete_volume(vid)
    assert code_of(lambda: alice.get_volume(vid)) == grpc.StatusCode.NOT_FOUND
    assert bob.render(vid, POSE, CAMERA).shape == (1, 1, 8, 8)  # still Bob's
    bob.delete_volume(vid)
    assert vid not in {v.volume_id for v in root.list_volumes()}  # gone


def test_ownership_survives_a_restart(tenants: Any, servers: Any,
                                      tmp_path: pathlib.Path) -> None:
    server, clients, tokens = tenants
    voxels, affine = small_volume(3)
    vid = clients["alice"].upload_volume(voxels, affine)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    restarted = servers("--tokens", str(tokens), "--data-dir", str(tmp_path / "data"))
    with Client(restarted.address, token=TOKENS["alice"]) as alice, \
            Client(restarted.address, token=TOKENS["bob"]) as bob:
        assert alice.render(vid, POSE, CAMERA).shape == (1, 1, 8, 8)
        assert code_of(lambda: bob.get_volume(vid)) == grpc.StatusCode.NOT_FOUND


def test_sighup_reloads_the_token_file(tenants: Any) -> None:
    server, clients, tokens = tenants
    token_file(tokens, {"bob": TOKENS["bob"], "carol": "carol-secret"})
    server.process.send_signal(signal.SIGHUP)
    with Client(server.address, token="carol-secret") as carol:
        for _ in range(100):  # until the server has read it
            try:
                carol.list_volumes()
                break
            except grpc.RpcError:
                time.sleep(0.05)
        assert carol.list_volumes() is not None
    assert code_of(clients["alice"].list_volumes) == grpc.StatusCode.UNAUTHENTICATED
    # A broken file keeps the tokens in use.
    tokens.write_text("carol admin not-a-digest\n")
    server.process.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert clients["bob"].list_volumes() is not None
    listed = subprocess.run([str(DRRCTL), "--server", server.address, "list"],
                            capture_output=True, text=True,
                            env={**os.environ, "DRR_TOKEN": TOKENS["bob"]})
    assert listed.returncode == 0, listed.stderr


def test_a_bad_token_file_keeps_the_server_from_starting(tmp_path: pathlib.Path) -> None:
    from conftest import RunningServer
    bad = tmp_path / "tokens"
    bad.write_text("alice owner " + "0" * 64 + "\n")
    with pytest.raises(RuntimeError, match="line 1: the role is user or admin"):
        RunningServer("--tokens", str(bad))


def test_without_tokens_the_server_says_it_serves_one_anonymous_tenant(server: Any) -> None:
    assert any("one anonymous tenant" in line for line in server.log)
