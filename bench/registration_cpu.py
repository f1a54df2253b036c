"""Registration iterations per second, end to end, on this machine: drrserve
(client -> server -> loss + gradient -> client, over loopback gRPC) beside
nanodrr's own loop (torch backend, autograd) on the same problem: nanodrr's
tutorial start pose on the chest CT, 200 x 200 pixels, 500 samples, Adam
(lr 5e-2 rotation, 1e1 translation) maximising NCC.

    .venv-parity/bin/python bench/registration_cpu.py [../shared/data] [--nanodrr-iterations 8]

Needs the parity venv (torch, nanodrr, and grpcio; see tests/parity/) and a
build (it starts build/server/drrserve itself).
"""

import argparse
import pathlib
import re
import subprocess
import time

import torch

from drrclient import Client, Intrinsics, Loss, Pose, RenderOptions, load_nifti
from drrclient.registration import euler_to_rotation_vector, register

ROOT = pathlib.Path(__file__).resolve().parents[1]
START_ROTATION = (-0.1303, 0.3461, -0.7852)   # ZXY, radians
START_TRANSLATION = (-11.86, 828.81, -24.46)  # mm


def drrserve_loop(chest):
    server = subprocess.Popen([str(ROOT / "build" / "server" / "drrserve"), "--listen",
                               "127.0.0.1:0", "--metrics-listen", "", "--device", "cpu"],
                              stdout=subprocess.PIPE, text=True)
    try:
        for line in server.stdout:
            match = re.search(r"listening on port (\d+)", line)
            if match:
                break
        with Client(f"127.0.0.1:{match.group(1)}") as client:
            voxels, affine = load_nifti(str(chest))
            volume = client.upload_volume(voxels, affine)
            camera, options = Intrinsics(), RenderOptions()
            target = client.render(volume, [Pose()], camera, options)[0, 0]
            target_id = client.upload_target(target)
            start = time.perf_counter()
            result = register(client, volume, target_id,
                              euler_to_rotation_vector(START_ROTATION, "ZXY"), START_TRANSLATION,
                              camera, Loss("ncc"), options, iterations=300, stop_at=0.999)
            seconds = time.perf_counter() - start
        return len(result.losses), result.losses[-1], len(result.losses) / seconds
    finally:
        server.terminate()
        server.wait()


def nanodrr_loop(chest, iterations):
    from nanodrr.camera import make_k_inv
    from nanodrr.camera.extrinsics import _get_orientation_matrix
    from nanodrr.data import Subject
    from nanodrr.drr import render
    from nanodrr.geometry import convert
    from nanodrr.metrics import NormalizedCrossCorrelation2d

    subject = Subject.from_filepath(str(chest))
    k_inv = make_k_inv(1020.0, 2.0, 2.0, 0.0, 0.0, 200, 200)
    sdd = torch.tensor([1020.0])
    reorient = _get_orientation_matrix("AP", "cpu", torch.float32)

    def pose(rotation, translation, parameterization, **kw):
        return convert(rotation, translation, parameterization, isocenter=subject.isocenter,
                       **kw) @ reorient

    with torch.no_grad():
        target = render(subject, k_inv, pose(torch.zeros(1, 3), torch.tensor([[0.0, 850.0, 0.0]]),
                                             "euler", convention="ZXY"), sdd, 200, 200,
                        backend="torch")
    rotation = torch.tensor(euler_to_rotation_vector(START_ROTATION, "ZXY")[None],
                            dtype=torch.float32, requires_grad=True)
    translation = torch.tensor([START_TRANSLATION], requires_grad=True)
    optimizer = torch.optim.Adam([{"params": [rotation], "lr": 5e-2},
                                  {"params": [translation], "lr": 1e1}])
    ncc = NormalizedCrossCorrelation2d()
    start = time.perf_counter()
    for _ in range(iterations):
        optimizer.zero_grad()
        image = render(subject, k_inv, pose(rotation, translation, "so3_log"), sdd, 200, 200,
                       backend="torch")
        loss = -ncc(image, target).sum()
        loss.backward()
        optimizer.step()
    return iterations / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--nanodrr-iterations", type=int, default=8)
    args = parser.parse_args()
    chest = pathlib.Path(args.data) / "lidc-idri-0001.nii.gz"
    iterations, final, ours = drrserve_loop(chest)
    theirs = nanodrr_loop(chest, args.nanodrr_iterations)
    print("| loop | iterations to NCC > 0.999 | it/s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| drrserve, CPU executor, loopback gRPC | {iterations} (final NCC {final:.4f}) "
          f"| {ours:.2f} | {ours / theirs:.1f}× |")
    print(f"| nanodrr torch backend, CPU, autograd | (timed over {args.nanodrr_iterations}) "
          f"| {theirs:.2f} | 1.0× |")


if __name__ == "__main__":
    main()
