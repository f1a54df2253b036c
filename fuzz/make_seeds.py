"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): small
valid inputs of every kind each target reads, from which libFuzzer mutates.
Run from the project venv after a build (it needs build/python's stubs):
    .venv/bin/python fuzz/make_seeds.py
The seeds are committed; rerun only when a format changes."""

import hashlib
import io
import pathlib
import struct

import numpy as np

from drr.v1 import volumes_pb2
from drrclient import Intrinsics, Loss, Pose, RenderOptions
from drrclient.client import Client
from drrclient.volume import as_wire_labels, as_wire_voxels, canonical_header_bytes, header_proto

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
AFFINE = np.diag([2.0, 1.5, 3.0, 1.0])
AFFINE[:3, 3] = [-10, 20, 5]


def write(target: str, name: str, data: bytes) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def volumes() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """(voxels (D, H, W), labels or None) of a few small volumes."""
    rng = np.random.default_rng(1)
    hu = rng.integers(-1000, 2000, size=(3, 4, 5)).astype(np.int16)
    return {
        "int16": (hu, None),
        "int16-labels": (hu, (np.arange(hu.size).reshape(hu.shape) % 3).astype(np.uint8)),
        "float32": (rng.normal(size=(2, 3, 4)).astype(np.float32), None),
        "uint8-labels16": (rng.integers(0, 255, size=(2, 2, 3)).astype(np.uint8),
                           (np.arange(12).reshape(2, 2, 3) * 300).astype(np.uint16)),
    }


def npy_seeds() -> None:
    arrays = {"f4-2d": np.arange(12, dtype="<f4").reshape(3, 4),
              "f8-1d": np.linspace(0, 1, 5), "f4-3d": np.ones((2, 2, 2), "<f4"),
              "f8-scalar": np.array(3.5), "f4-empty": np.zeros((0, 3), "<f4"),
              "f4-fortran": np.asfortranarray(np.ones((2, 3), "<f4")),
              "f4-big-endian": np.ones(3, ">f4"), "i4": np.arange(4, dtype="<i4")}
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, array)
        write("npy_fuzz", name + ".npy", buffer.getvalue())
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ones((2, 2), "<f4"), version=(2, 0))
    write("npy_fuzz", "version2.npy", buffer.getvalue())


def wire(voxels: np.ndarray, labels: np.ndarray | None
         ) -> tuple[volumes_pb2.VolumeHeader, bytes, bytes]:
    """The wire header, voxel bytes and label bytes of a volume."""
    array = as_wire_voxels(voxels)
    label_array = None if labels is None else as_wire_labels(labels, array.shape)
    header = header_proto(array, AFFINE, "hu", label_array)
    return header, array.tobytes(), b"" if label_array is None else label_array.tobytes()


def framed(messages: list[volumes_pb2.UploadVolumeChunk]) -> bytes:
    out = b""
    for message in messages:
        data = message.SerializeToString()
        out += struct.pack("<H", len(data)) + data
    return out


def upload_and_archive_seeds() -> None:
    for name, (voxels, labels) in volumes().items():
        header, data, label_data = wire(voxels, labels)
        content = canonical_header_bytes(header) + data + label_data
        digest = hashlib.sha256(content).hexdigest()
        half = len(data) // 2 + 1  # a chunk boundary inside a voxel
        chunks = [volumes_pb2.UploadVolumeChunk(header=header),
                  volumes_pb2.UploadVolumeChunk(data=data[:half]),
                  volumes_pb2.UploadVolumeChunk(data=data[half:] + label_data),
                  volumes_pb2.UploadVolumeChunk(digest=digest)]
        write("upload_fuzz", name + "-memory", b"\0" + framed(chunks))
        write("upload_fuzz", name + "-disk", b"\1" + framed(chunks))
        write("archive_fuzz", name + "-volume", b"\0" + content)
        write("archive_fuzz", name + "-volume-wrong-id", b"\2" + content)
    write("archive_fuzz", "owners", b"\1#bytes 1234\nalice\nbob\n")


def render_request_seeds() -> None:
    camera = Intrinsics(sdd=1020, delx=8.0, dely=8.0, height=8, width=8)
    pose = Pose(rotation=(10, 20, 30), translation=(0, 300, 0))
    ask = Client.render_request
    requests = {
        "euler": ask("v", [pose], camera, RenderOptions(n_samples=16)),
        "siddon-mip": ask("v", [pose], camera, RenderOptions(n_samples=8, renderer="siddon", output="mip")),
        "labels-classes": ask("v", [pose], camera,
                              RenderOptions(n_samples=8, classes=[0, 2], image_dtype="float16")),
        "sum-bfloat16": ask("v", [pose], camera,
                            RenderOptions(n_samples=8, sum_channels=True,
                                          volume_storage="bfloat16", output="exp")),
        "quaternion": ask("v", [Pose(rotation=(0, 0, 0.2, 0.98), parameterization="quaternion",
                                     translation=(5, 250, -3), isocenter=(1, 2, 3))],
                          camera, RenderOptions(n_samples=8)),
        "se3-log": ask("v", [Pose(rotation=(0.1, 0.2, 0.3), parameterization="se3_log",
                                  translation=(0, 200, 0), orientation="PA")],
                       camera, RenderOptions(n_samples=8, mu_water=0.02, mu_bone=0.05)),
        "rt-inv": ask("v", [np.array([[1, 0, 0, 0], [0, 0, -1, 300], [0, 1, 0, 0], [0, 0, 0, 1]],
                                     dtype=float)], camera, RenderOptions(n_samples=8)),
        "per-pose-intrinsics": ask("v", [pose, pose],
                                   [camera, Intrinsics(sdd=900, delx=6.0, dely=6.0, height=8,
                                                       width=8, x0=3, y0=-2)],
                                   RenderOptions(n_samples=8)),
    }
    gradient = ask("v", [pose], camera, RenderOptions(n_samples=8))
    gradient.gradient.upstream = np.ones(3 * 64, np.float32).tobytes()
    requests["gradient"] = gradient
    jacobian = ask("v", [pose], camera, RenderOptions(n_samples=8, sum_channels=True))
    jacobian.jacobian = True
    requests["jacobian"] = jacobian
    for name, spec in {"ncc": Loss(kind="ncc"), "patch-ncc": Loss(kind="ncc", patch_sizes=[3]),
                       "multiscale": Loss(kind="multiscale_ncc", patch_sizes=[0, 4],
                                          patch_weights=[0.5, 0.5]),
                       "gradient-ncc": Loss(kind="gradient_ncc", sigma=1.5),
                       "mse": Loss(kind="mse", eps=1e-3),
                       "mutual-information": Loss(kind="mutual_information", bins=16)}.items():
        request = ask("v", [pose], camera, RenderOptions(n_samples=8, sum_channels=True))
        request.loss.CopyFrom(spec.to_proto("t", return_images=True))
        requests["loss-" + name] = request
        loss = spec.to_proto("t").SerializeToString()
        pixels = np.linspace(-3, 5, 2 * 36).astype("<f4").tobytes()
        write("loss_fuzz", name, struct.pack("<H", len(loss)) + loss + bytes([5, 5]) + pixels)
    for name, request in requests.items():
        write("render_request_fuzz", name, request.SerializeToString())


def main() -> None:
    npy_seeds()
    upload_and_archive_seeds()
    render_request_seeds()


if __name__ == "__main__":
    main()
