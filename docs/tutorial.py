"""Makes the pictures and numbers of docs/tutorial.md from the real service: starts drrserve
(build/server/drrserve; CUDA if usable, else the CPU) unless --server names a running one,
uploads the bundled chest CT, and renders

  images/tutorial-ap-lateral.png   AP and lateral DRRs
  images/tutorial-labels.png       one channel per label class (air, soft tissue, bone by HU)
  images/tutorial-soft-labels.png  the bone channel with nearest and with soft labels
  images/tutorial-registration.png the target, the DRR at the start pose and after registration,
                                   and the NCC per iteration

    .venv/bin/python docs/tutorial.py [--server HOST:PORT]
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import re
import subprocess
import time
from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from drrclient import Client, Intrinsics, Loss, Pose, RenderOptions, load_volume  # noqa: E402
from drrclient.registration import euler_to_rotation_vector, register  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
CHEST = ROOT.parent / "shared" / "data" / "lidc-idri-0001.nii.gz"
# nanodrr's reference camera and pose: 200x200 pixels of 2 mm, source 1020 mm from the detector,
# the camera 850 mm in front of the volume centre, looking AP.
CAMERA = Intrinsics(sdd=1020, delx=2.0, dely=2.0, height=200, width=200)
AP = Pose(rotation=(0, 0, 0), translation=(0, 850, 0))
LATERAL = Pose(rotation=(90, 0, 0), translation=(0, 850, 0))


@contextlib.contextmanager
def server(address: str | None) -> Iterator[str]:
    """``address``, or a drrserve of the build's started on a free loopback port."""
    if address:
        yield address
        return
    process = subprocess.Popen([str(ROOT / "build" / "server" / "drrserve"), "--listen",
                                "127.0.0.1:0", "--metrics-listen", ""],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="")
            match = re.search(r"listening on port (\d+)", line)
            if match:
                yield f"127.0.0.1:{match.group(1)}"
                return
        raise RuntimeError("drrserve did not start")
    finally:
        process.terminate()
        process.wait(timeout=30)


def show(axis: plt.Axes, image: np.ndarray, title: str) -> None:
    axis.imshow(image, cmap="gray")
    axis.set_title(title)
    axis.axis("off")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="a running drrserve (default: start one)")
    args = parser.parse_args()
    voxels, affine = load_volume(CHEST)
    with server(args.server) as address, Client(address) as client:
        volume = client.upload_volume(voxels, affine)
        images = client.render(volume, [AP, LATERAL], CAMERA)
        figure, axes = plt.subplots(1, 2, figsize=(8, 4.2))
        show(axes[0], images[0, 0], "AP")
        show(axes[1], images[1, 0], "lateral (90°)")
        figure.tight_layout()
        figure.savefig(IMAGES / "tutorial-ap-lateral.png", dpi=80, bbox_inches="tight")

        # Labels by HU: 0 air (below -500), 1 soft tissue, 2 bone (above 300 HU).
        labels = np.digitize(voxels, [-500, 300]).astype(np.uint8)
        labelled = client.upload_volume(voxels, affine, labels=labels)
        channels = client.render(labelled, [AP], CAMERA)[0]
        figure, axes = plt.subplots(1, 3, figsize=(12, 4.2))
        for axis, channel, name in zip(axes, channels, ["air", "soft tissue", "bone"]):
            show(axis, channel, f"channel {name}")
        figure.tight_layout()
        figure.savefig(IMAGES / "tutorial-labels.png", dpi=80, bbox_inches="tight")
        total = channels.sum(axis=0)
        print(f"label channels: {channels.shape[0]}, their sum matches the unlabelled DRR to "
              f"{np.abs(total - images[0, 0]).max() / images[0, 0].max():.1e} of its maximum")

        # Soft labels (nanodrr 0.1.7): each trilinear neighbour of a sample goes to its own
        # class, so a channel fades across its class boundary instead of stepping.
        soft = client.render(labelled, [AP], CAMERA, RenderOptions(soft_labels=True))[0]
        figure, axes = plt.subplots(1, 3, figsize=(12, 4.2))
        show(axes[0], channels[2], "bone, nearest label")
        show(axes[1], soft[2], "bone, soft labels")
        show(axes[2], soft[2] - channels[2], "soft − nearest")
        figure.tight_layout()
        figure.savefig(IMAGES / "tutorial-soft-labels.png", dpi=80, bbox_inches="tight")
        print(f"soft labels: channels sum to the DRR to "
              f"{np.abs(soft.sum(axis=0) - images[0, 0]).max() / images[0, 0].max():.1e}; bone "
              f"moves by up to {np.abs(soft[2] - channels[2]).max() / channels[2].max():.1%} "
              f"of its maximum")

        # Registration from nanodrr's tutorial start pose to the AP DRR, one loss_and_grad
        # call per iteration.
        target = images[0, 0]
        target_id = client.upload_target(target, volume)
        start_rotation = euler_to_rotation_vector((-0.1303, 0.3461, -0.7852), "ZXY")
        start_translation = (-11.86, 828.81, -24.46)
        start = client.render(volume, [Pose(rotation=start_rotation,
                                            translation=start_translation,
                                            parameterization="so3_log")], CAMERA)[0, 0]
        began = time.perf_counter()
        result = register(client, volume, target_id, start_rotation, start_translation, CAMERA,
                          Loss("ncc"), RenderOptions(), iterations=500, stop_at=0.999)
        seconds = time.perf_counter() - began
        final = client.render(volume, [Pose(rotation=result.rotation,
                                            translation=result.translation,
                                            parameterization="so3_log")], CAMERA)[0, 0]
        figure, axes = plt.subplots(1, 4, figsize=(16, 4.2))
        show(axes[0], target, "target (AP)")
        show(axes[1], start, f"start: NCC {result.losses[0]:.3f}")
        show(axes[2], final, f"after {len(result.losses)} iterations: NCC {result.losses[-1]:.4f}")
        axes[3].plot(result.losses)
        axes[3].set_xlabel("iteration")
        axes[3].set_ylabel("NCC")
        axes[3].grid(True)
        figure.tight_layout()
        figure.savefig(IMAGES / "tutorial-registration.png", dpi=80, bbox_inches="tight")
        print(f"registration: NCC {result.losses[0]:.4f} -> {result.losses[-1]:.4f} in "
              f"{len(result.losses)} iterations ({len(result.losses) / seconds:.1f} it/s), "
              f"translation {np.round(result.translation, 2)} mm, "
              f"rotation vector {np.round(result.rotation, 4)} rad")


if __name__ == "__main__":
    main()
