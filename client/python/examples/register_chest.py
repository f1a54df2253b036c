"""Registers the bundled chest CT to a DRR of it, from nanodrr's tutorial
start pose, through a running drrserve (scripts/run.sh):

    .venv/bin/python client/python/examples/register_chest.py [--server HOST:PORT]

The target is rendered at rotation 0, translation (0, 850, 0), AP; the start
is ZXY rotation (-0.1303, 0.3461, -0.7852) rad, translation (-11.86, 828.81,
-24.46) mm; Adam (lr 5e-2 rotation, 1e1 translation) maximises NCC. Each
iteration is one loss_and_grad call: no image crosses the wire.
"""

import argparse
import pathlib
import time

from drrclient import Client, Intrinsics, Loss, Pose, RenderOptions, load_nifti
from drrclient.registration import euler_to_rotation_vector, register

ROOT = pathlib.Path(__file__).resolve().parents[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--volume", default=str(ROOT.parent / "shared" / "data" / "lidc-idri-0001.nii.gz"))
    parser.add_argument("--size", type=int, default=200, help="detector pixels per side")
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()

    camera = Intrinsics(sdd=1020, delx=2.0 * 200 / args.size, dely=2.0 * 200 / args.size,
                        height=args.size, width=args.size)
    options = RenderOptions(n_samples=args.samples)
    with Client(args.server) as client:
        voxels, affine = load_nifti(args.volume)
        volume = client.upload_volume(voxels, affine)
        target = client.render(volume, [Pose(rotation=(0, 0, 0), translation=(0, 850, 0))],
                               camera, options)[0, 0]
        target_id = client.upload_target(target)
        start = euler_to_rotation_vector((-0.1303, 0.3461, -0.7852), "ZXY")
        began = time.perf_counter()
        result = register(client, volume, target_id, start, (-11.86, 828.81, -24.46), camera,
                          Loss("ncc"), options, lr_rotation=5e-2, lr_translation=1e1,
                          iterations=500, stop_at=0.999,
                          callback=lambda i, ncc, _: print(f"iteration {i:3d}  NCC {ncc:.5f}"))
        seconds = time.perf_counter() - began
    print(f"{'converged' if result.converged else 'stopped'} after {len(result.losses)} iterations, "
          f"{len(result.losses) / seconds:.1f} it/s")
    print("rotation vector (rad):", result.rotation.round(5))
    print("translation (mm):", result.translation.round(3))


if __name__ == "__main__":
    main()
