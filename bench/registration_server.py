"""Registration on the server against the client-driven loop, in one run on this machine:
nanodrr's tutorial start pose on the chest CT, Adam (lr 5e-2 rotation, 1e1 translation)
maximising NCC, against one drrserve on loopback (CPU executor).

- Iterations per second at the same settings (a fixed number of iterations, no stop): the
  reference camera (200 x 200, 500 samples) and a small one (64 x 64 pixels of 6.25 mm, 100
  samples) where the round trip weighs more.
- Time to NCC >= 0.999 from the tutorial start at the reference camera: the client loop, the
  server loop, and the server coarse-to-fine (scales 4, 2, 1).

    .venv/bin/python bench/registration_server.py [../shared/data] [--iterations 20]
"""

import argparse
import pathlib
import re
import subprocess
import time

from drrclient import Client, Intrinsics, Loss, Pose, RenderOptions, load_nifti
from drrclient.registration import euler_to_rotation_vector, register

ROOT = pathlib.Path(__file__).resolve().parents[1]
START_ROTATION = euler_to_rotation_vector((-0.1303, 0.3461, -0.7852), "ZXY")
START_TRANSLATION = (-11.86, 828.81, -24.46)


def start_server() -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([str(ROOT / "build" / "server" / "drrserve"), "--listen",
                               "127.0.0.1:0", "--metrics-listen", "", "--device", "cpu"],
                              stdout=subprocess.PIPE, text=True)
    for line in server.stdout:
        match = re.search(r"listening on port (\d+)", line)
        if match:
            return server, f"127.0.0.1:{match.group(1)}"
    raise RuntimeError("drrserve did not start")


def timed(client, volume, target, camera, options, on, **kw):
    start = time.perf_counter()
    result = register(client, volume, target, START_ROTATION, START_TRANSLATION, camera,
                      Loss("ncc"), options, on=on, **kw)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    server, address = start_server()
    try:
        with Client(address) as client:
            voxels, affine = load_nifti(str(pathlib.Path(args.data) / "lidc-idri-0001.nii.gz"))
            volume = client.upload_volume(voxels, affine)
            cases = {"200 x 200, 500 samples": (Intrinsics(), RenderOptions()),
                     "64 x 64, 100 samples": (Intrinsics(delx=6.25, dely=6.25, height=64,
                                                         width=64), RenderOptions(n_samples=100))}
            print("| camera | client loop it/s | server loop it/s | ratio |")
            print("| --- | ---: | ---: | ---: |")
            targets = {}
            for name, (camera, options) in cases.items():
                image = client.render(volume, [Pose()], camera, options)[0, 0]
                targets[name] = client.upload_target(image)
                rates = {}
                for on in ("client", "server"):
                    timed(client, volume, targets[name], camera, options, on, iterations=2,
                          stop_at=None)  # warm-up
                    seconds, result = timed(client, volume, targets[name], camera, options, on,
                                            iterations=args.iterations, stop_at=None)
                    rates[on] = len(result.losses) / seconds
                print(f"| {name} | {rates['client']:.2f} | {rates['server']:.2f} "
                      f"| {rates['server'] / rates['client']:.2f}× |")
            camera, options = cases["200 x 200, 500 samples"]
            target = targets["200 x 200, 500 samples"]
            print()
            print("| loop (200 x 200, 500 samples) | iterations to NCC >= 0.999 | seconds |")
            print("| --- | ---: | ---: |")
            for label, on, scales in [("client loop", "client", (1,)),
                                      ("server loop", "server", (1,)),
                                      ("server, scales 4, 2, 1", "server", (4, 2, 1))]:
                seconds, result = timed(client, volume, target, camera, options, on,
                                        iterations=300, stop_at=0.999, scales=scales)
                print(f"| {label} | {len(result.losses)} (final {result.losses[-1]:.4f}, "
                      f"{'converged' if result.converged else 'not converged'}) "
                      f"| {seconds:.1f} |")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
