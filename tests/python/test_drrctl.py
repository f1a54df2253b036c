"""drrctl against the real server."""

import os
import pty
import subprocess

import matplotlib.image
import nibabel
import numpy as np
import pytest

from conftest import DRRCTL, small_volume
from drr.v1 import renderer_pb2
from drrclient import Intrinsics, Pose, RenderOptions, load_nifti, volume_id
from drrclient._enums import spellings


def drrctl(*args):
    return subprocess.run([str(DRRCTL), *args], capture_output=True, encoding="utf-8", timeout=120)


def write_nifti(path, voxels, affine):
    """Saves a volume; returns it as read back (NIfTI keeps the affine in float32)."""
    nibabel.save(nibabel.Nifti1Image(voxels.transpose(2, 1, 0), affine), str(path))
    return load_nifti(str(path))


def test_upload_prints_the_content_id(server, tmp_path):
    voxels, affine = write_nifti(tmp_path / "v.nii.gz", *small_volume(11))
    result = drrctl("upload", str(tmp_path / "v.nii.gz"), "--server", server.address)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == volume_id(voxels, affine)


@pytest.mark.parametrize("kind", ["qform-only", "oblique-qform", "no-codes", "scaled", "int8",
                                  "float64", "sheared-uint16"])
def test_upload_reads_nifti_as_nibabel_does(server, tmp_path, kind):
    """niftilib in drrctl, nibabel in drrclient: one file, one volume id."""
    rng = np.random.default_rng(5)
    affine = np.array([[-0.8, 0.1, 0.0, 40.0], [0.05, 0.9, 0.0, -30.0], [0.0, 0.0, 2.5, 7.25],
                       [0, 0, 0, 1]])
    data = {"qform-only": rng.integers(-1000, 2000, (6, 5, 4)).astype(np.int16),
            "oblique-qform": rng.integers(-1000, 2000, (6, 5, 4)).astype(np.int16),
            "no-codes": rng.integers(-1000, 2000, (6, 5, 4)).astype(np.int16),
            "scaled": rng.integers(0, 3000, (6, 5, 4)).astype(np.int16),
            "int8": rng.integers(-100, 100, (6, 5, 4)).astype(np.int8),
            "float64": rng.normal(size=(6, 5, 4)),
            "sheared-uint16": rng.integers(0, 60000, (6, 5, 4)).astype(np.uint16)}[kind]
    image = nibabel.Nifti1Image(data, affine)
    if kind == "qform-only":
        image.set_qform(np.diag([-0.8, 0.9, 2.5, 1.0]), code=1)
        image.set_sform(None, code=0)
    if kind == "oblique-qform":  # nibabel rebuilds it in long double: bit for bit
        c, s_ = np.cos(0.4), np.sin(0.4)
        rotation = np.array([[c, -s_, 0], [s_ * 0.6, c * 0.6, -0.8], [s_ * 0.8, c * 0.8, 0.6]])
        oblique = np.eye(4)
        oblique[:3, :3] = rotation @ np.diag([0.7, 0.9, 2.5])
        oblique[:3, 3] = [12.5, -40.25, 3.0]
        image.set_qform(oblique, code=1)
        image.set_sform(None, code=0)
    if kind == "no-codes":
        image.set_qform(None, code=0)
        image.set_sform(None, code=0)
    if kind == "scaled":
        image.header.set_slope_inter(2.0, -1024.0)
    nibabel.save(image, str(tmp_path / "v.nii.gz"))
    result = drrctl("upload", str(tmp_path / "v.nii.gz"), "--server", server.address)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == volume_id(*load_nifti(str(tmp_path / "v.nii.gz")))


def test_render_writes_png_and_npy_of_the_requested_pose(server, client, tmp_path):
    voxels, affine = write_nifti(tmp_path / "v.nii.gz", *small_volume(12))
    out = tmp_path / "drr"
    result = drrctl("render", str(tmp_path / "v.nii.gz"), "--server", server.address,
                    "--rotation", "30", "-10", "5", "--translation", "0", "-200", "10",
                    "--orientation", "PA", "--sdd", "400", "--delx", "1.5", "--dely", "1.25",
                    "--x0", "3", "--y0", "-2", "--height", "30", "--width", "40",
                    "--samples", "250", "-o", str(out))
    assert result.returncode == 0, result.stderr
    image = np.load(out.with_suffix(".npy"))
    assert image.shape == (30, 40) and image.dtype == np.float32
    expected = client.render(
        volume_id(voxels, affine),
        [Pose(rotation=(30, -10, 5), translation=(0, -200, 10), orientation="PA")],
        Intrinsics(sdd=400, delx=1.5, dely=1.25, x0=3, y0=-2, height=30, width=40),
        RenderOptions(n_samples=250))
    np.testing.assert_array_equal(image, expected[0, 0])
    png = out.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == 40 and int.from_bytes(png[20:24], "big") == 30


def test_bad_input_gives_a_clear_error_and_exit_code(server, tmp_path):
    result = drrctl("render", "f" * 64, "--server", server.address, "-o", str(tmp_path / "x"))
    assert result.returncode == 1 and "NOT_FOUND" in result.stderr
    result = drrctl("render", "f" * 64, "--server", server.address, "--height", "0")
    assert result.returncode == 1 and "intrinsics.height" in result.stderr
    result = drrctl("render", "x", "--translation", "1", "2")
    assert result.returncode == 1 and "--translation" in result.stderr
    result = drrctl("render", "f" * 64, "--server", server.address, "--rotation", "1", "2")
    assert result.returncode == 1 and "rotation needs 3 values" in result.stderr


def test_labels_and_render_options_reach_the_server(server, client, tmp_path):
    voxels, affine = write_nifti(tmp_path / "v.nii.gz", *small_volume(13))
    labels = (np.arange(voxels.size).reshape(voxels.shape) % voxels.shape[2] // 11).astype(np.uint8)
    nibabel.save(nibabel.Nifti1Image(labels.transpose(2, 1, 0), affine), str(tmp_path / "l.nii.gz"))
    result = drrctl("upload", str(tmp_path / "v.nii.gz"), "--labels", str(tmp_path / "l.nii.gz"),
                    "--server", server.address)
    assert result.returncode == 0, result.stderr
    vid = result.stdout.strip()
    assert vid == volume_id(voxels, affine, labels=labels)
    out = tmp_path / "sid"
    result = drrctl("render", vid, "--server", server.address, "--renderer", "siddon",
                    "--output", "exp", "--image-dtype", "float16", "--classes", "2", "0",
                    "--translation", "0", "200", "0", "--sdd", "400", "--height", "20",
                    "--width", "24", "-o", str(out))
    assert result.returncode == 0, result.stderr
    image = np.load(out.with_suffix(".npy"))
    expected = client.render(vid, [Pose(translation=(0, 200, 0))], Intrinsics(sdd=400, height=20, width=24),
                             RenderOptions(renderer="siddon", output="exp", image_dtype="float16",
                                           classes=[2, 0]))[0]
    assert image.shape == (2, 20, 24)
    np.testing.assert_array_equal(image, expected)
    result = drrctl("render", vid, "--server", server.address, "--renderer", "nope")
    assert result.returncode == 1 and "--renderer must be one of" in result.stderr
    # nanodrr 0.1.7's sampling and soft labels.
    result = drrctl("render", vid, "--server", server.address, "--sampling", "clipped",
                    "--soft-labels", "--samples", "40", "--translation", "0", "200", "0",
                    "--sdd", "400", "--height", "20", "--width", "24", "-o", str(out))
    assert result.returncode == 0, result.stderr
    expected = client.render(vid, [Pose(translation=(0, 200, 0))], Intrinsics(sdd=400, height=20, width=24),
                             RenderOptions(n_samples=40, sampling="clipped", soft_labels=True))[0]
    hard = client.render(vid, [Pose(translation=(0, 200, 0))], Intrinsics(sdd=400, height=20, width=24),
                         RenderOptions(n_samples=40))[0]
    np.testing.assert_array_equal(np.load(out.with_suffix(".npy")), expected)
    assert np.abs(expected - hard).max() > 1e-3 * np.abs(hard).max()
    result = drrctl("render", vid, "--server", server.address, "--soft-labels", "--output", "mip")
    assert result.returncode == 1 and "options.soft_labels needs" in result.stderr


def test_register_recovers_a_pose_and_prints_each_iteration(server, client, tmp_path):
    # A smooth volume (two blobs, HU) registers reliably.
    z, y, x = np.mgrid[0:40, 0:44, 0:48]
    blob = (900 * np.exp(-((x - 22) ** 2 / 90 + (y - 20) ** 2 / 60 + (z - 18) ** 2 / 40))
            - 500 * np.exp(-((x - 30) ** 2 + (y - 26) ** 2 + (z - 22) ** 2) / 30)).astype(np.int16)
    voxels, affine = write_nifti(tmp_path / "b.nii.gz", blob, np.diag([-2.0, -2.0, 2.5, 1.0]))
    vid = client.upload_volume(voxels, affine)
    camera = Intrinsics(sdd=400, delx=3, dely=3, height=24, width=28)
    image = client.render(vid, [Pose(translation=(0, 250, 0))], camera,
                          RenderOptions(n_samples=300))[0, 0]
    np.save(tmp_path / "target.npy", image)
    problem = ["--target", str(tmp_path / "target.npy"), "--rotation", "6", "-4", "3",
               "--translation", "4", "245", "-3", "--lr-rotation", "0.02",
               "--lr-translation", "1", "--iterations", "150", "--stop-at", "0.9995",
               "--sdd", "400", "--delx", "3", "--dely", "3", "--height", "24",
               "--width", "28", "--samples", "300"]

    def final_loss(result) -> float:
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("iteration 0 loss")  # not a terminal: lines as they come
        return float(next(line for line in lines if line.startswith("final loss")).split()[2])

    # The server's loop, the loop run from drrctl, and the server's coarse-to-fine.
    result = drrctl("register", str(tmp_path / "b.nii.gz"), "--server", server.address,
                    *problem, "-o", str(tmp_path / "reg"))
    assert final_loss(result) >= 0.9995
    local = drrctl("register", vid, "--server", server.address, *problem, "--client-loop")
    assert final_loss(local) >= 0.9995
    coarse = drrctl("register", vid, "--server", server.address, *problem, "--scales", "4",
                    "2", "1")
    assert final_loss(coarse) >= 0.9995
    refused = drrctl("register", vid, "--server", server.address, *problem, "--scales", "5")
    assert refused.returncode == 1 and "scales[0] is 5" in refused.stderr
    refused = drrctl("register", vid, "--server", server.address, *problem, "--scales", "2",
                     "--client-loop")
    assert refused.returncode == 1 and "--client-loop registers at full scale" in refused.stderr
    # The final DRR's edges (red) over the target, and the loss per iteration (a blue line).
    overlay = np.round(matplotlib.image.imread(tmp_path / "reg-overlay.png") * 255)
    assert overlay.shape == (24, 28, 3)
    red = np.all(overlay == (255, 40, 40), axis=-1)
    assert 0 < red.sum() <= 0.1 * 24 * 28 + 1
    plot = np.round(matplotlib.image.imread(tmp_path / "reg-loss.png") * 255)
    assert plot.shape == (240, 400, 3)
    assert np.all(plot == (30, 80, 200), axis=-1).sum() > 100
    result = drrctl("register", vid, "--server", server.address, "--target",
                    str(tmp_path / "target.npy"), "--height", "10")
    assert result.returncode == 1 and "--target must be a (10, 200) image" in result.stderr
    result = drrctl("register", vid, "--server", server.address, "--target",
                    str(tmp_path / "target.npy"), "--iterations", "0", "-o", str(tmp_path / "x"))
    assert result.returncode == 1 and "--iterations must be at least 1" in result.stderr


def test_enum_flags_list_the_spellings_the_python_client_takes():
    help_text = drrctl("render", "--help").stdout + drrctl("register", "--help").stdout
    for flag, enum in [("--renderer", renderer_pb2.RendererKind), ("--output", renderer_pb2.Output),
                       ("--image-dtype", renderer_pb2.DType), ("--sampler", renderer_pb2.SamplerKind),
                       ("--sampling", renderer_pb2.Sampling),
                       ("--parameterization", renderer_pb2.Parameterization),
                       ("--orientation", renderer_pb2.Orientation), ("--loss", renderer_pb2.LossKind)]:
        line = next(line for line in help_text.splitlines() if line.strip().startswith(flag + " "))
        listed, default = line.split("one of: ", 1)[1].split(" (default: ")
        assert listed.split(", ") == list(spellings(enum.DESCRIPTOR)), flag
        assert default == listed.split(", ")[0] + ")", flag


def test_register_refuses_a_convention_that_is_not_three_axes(server, tmp_path):
    np.save(tmp_path / "target.npy", np.zeros((200, 200), np.float32))
    result = drrctl("register", "f" * 64, "--server", server.address, "--target",
                    str(tmp_path / "target.npy"), "--convention", "Z")
    assert result.returncode == 1 and '--convention "Z" is not three axis letters' in result.stderr


def test_sweep_renders_a_batch_of_poses_into_a_contact_sheet(server, client, tmp_path):
    vid = client.upload_volume(*small_volume(13))
    camera = ["--sdd", "300", "--delx", "1.5", "--dely", "1.5", "--height", "16", "--width", "20"]
    result = drrctl("sweep", vid, "--server", server.address, "--axis", "0", "--from", "-30",
                    "--to", "30", "--count", "5", "--translation", "0", "150", "0", *camera,
                    "-o", str(tmp_path / "sweep"))
    assert result.returncode == 0, result.stderr
    images = np.load(tmp_path / "sweep.npy")
    assert images.shape == (5, 16, 20)
    for image, angle in zip(images, [-30, -15, 0, 15, 30]):
        expected = client.render(vid, [Pose(rotation=(angle, 0, 0), translation=(0, 150, 0))],
                                 Intrinsics(sdd=300, delx=1.5, dely=1.5, height=16, width=20))
        np.testing.assert_array_equal(image, expected[0, 0])
    # Three to a row (a square), 4 white pixels apart; each tile windowed on its own.
    sheet = np.round(matplotlib.image.imread(tmp_path / "sweep.png") * 255)
    assert sheet.shape == (2 * 16 + 4, 3 * 20 + 2 * 4, 3)
    for i, image in enumerate(images):
        top, left = (i // 3) * 20, (i % 3) * 24
        windowed = np.round((image - image.min()) / (image.max() - image.min()) * 255)
        np.testing.assert_allclose(sheet[top:top + 16, left:left + 20, 0], windowed, atol=1)
    assert np.all(sheet[16:20] == 255) and np.all(sheet[20:, 3 * 20 + 2 * 4 - 20:] == 255)


def test_an_upload_shows_a_progress_bar_on_a_terminal(server, tmp_path):
    write_nifti(tmp_path / "v.nii.gz", *small_volume(14, shape=(64, 96, 128)))  # 2 chunks
    controller, terminal = pty.openpty()
    try:
        try:
            result = subprocess.run([str(DRRCTL), "upload", str(tmp_path / "v.nii.gz"),
                                     "--server", server.address], stdout=subprocess.PIPE,
                                    stderr=terminal, timeout=120, check=False)
        finally:
            os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert result.returncode == 0
    assert len(result.stdout.decode().strip()) == 64  # the id alone on stdout
    text = shown.decode()
    # The bar redrawn in place: after the first chunk (1 of 1.5 MiB), then at the end.
    assert "upload [" in text and " 66% 1 of 1 MiB" in text and "100% 1 of 1 MiB" in text
