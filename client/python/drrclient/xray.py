"""X-ray images (DICOM: XA, RF, DX, CR) as registration targets, read as xvr reads them (its
``read_xray`` and ``parse_dicom_pose``): the C-arm's geometry from the DICOM tags, as the camera
(Intrinsics) and a first pose (Pose), and the image preprocessed into the line-integral form a DRR
has. Needs SimpleITK (the package's ``itk`` extra)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from drrclient.geometry import Intrinsics, Pose
from drrclient.volume import _itk

# The DICOM tags read ("group|element", as SimpleITK names them).
_SOURCE_TO_DETECTOR = "0018|1110"
_SOURCE_TO_PATIENT = "0018|1111"
_PIXEL_SPACING = "0028|0030"
_IMAGER_PIXEL_SPACING = "0018|1164"
_DETECTOR_ACTIVE_ORIGIN = "0018|7028"
_PRIMARY_ANGLE = "0018|1510"
_SECONDARY_ANGLE = "0018|1511"
_PATIENT_ORIENTATION = "0020|0020"


@dataclass(frozen=True)
class XRay:
    """An X-ray read for registration: ``image`` (H, W) float32, preprocessed; the camera that
    took it; the pose its positioner tags give (None without them); and whether its columns were
    flipped from posterior-foot to anterior-foot orientation."""

    image: npt.NDArray[np.float32]
    intrinsics: Intrinsics
    pose: Pose | None
    flipped: bool


def read_xray(path: str | os.PathLike[str], crop: int = 0, subtract_background: bool = False,
              linearize: bool = True, frames: Literal["max", "sum"] | int = "max",
              orientation: Literal["AP", "PA"] = "AP") -> XRay:
    """Reads the X-ray DICOM at ``path``.

    Camera: DistanceSourceToDetector is ``sdd``; PixelSpacing (else ImagerPixelSpacing), row then
    column, gives ``dely`` and ``delx``; DetectorActiveOrigin (row, column) gives ``y0`` and
    ``x0`` (0 without it). Pose: ZXY Euler angles (PositionerPrimaryAngle,
    PositionerSecondaryAngle, 0) in degrees, the camera DistanceSourceToPatient from the
    isocenter along y (negated for ``orientation`` PA). An image whose PatientOrientation is P\\F
    with a negative primary angle (RAO) is flipped left to right, to anterior-foot.

    Preprocessing, in order: ``crop`` pixels off each dimension in all (half each side), the
    values rescaled to [0, 1], with ``subtract_background`` the most common value subtracted (and
    the result clamped back into [0, 1]), and with ``linearize`` turned from transmitted
    intensity into a line integral: log(max(I + 1)) - log(I + 1). Several frames are reduced to
    one by ``frames``: "max", "sum", or the index of one."""
    sitk = _itk()
    reader = sitk.ImageFileReader()
    reader.SetFileName(os.fspath(path))
    image = reader.Execute()

    def tag(key: str) -> str | None:
        return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else None

    def numbers(key: str) -> list[float] | None:
        text = tag(key)
        return None if not text else [float(part) for part in text.split("\\")]

    sdd = numbers(_SOURCE_TO_DETECTOR)
    if sdd is None:
        raise ValueError(f"{path}: no DistanceSourceToDetector (0018,1110): not a projection "
                         "X-ray with its geometry")
    spacing = numbers(_PIXEL_SPACING) or numbers(_IMAGER_PIXEL_SPACING)
    if spacing is None:
        raise ValueError(f"{path}: no PixelSpacing (0028,0030) nor ImagerPixelSpacing "
                         "(0018,1164)")
    if not (frames in ("max", "sum") or isinstance(frames, int)):
        raise ValueError(f"frames must be 'max', 'sum' or a frame index, not {frames!r}")
    origin = numbers(_DETECTOR_ACTIVE_ORIGIN) or [0.0, 0.0]

    # (frames, H, W): one frame, or a run of them.
    pixels = sitk.GetArrayFromImage(image).astype(np.float64)
    pixels = pixels.reshape(-1, *pixels.shape[-2:])

    primary, secondary = numbers(_PRIMARY_ANGLE), numbers(_SECONDARY_ANGLE)
    flipped = (tag(_PATIENT_ORIENTATION) or "").replace(" ", "") == "P\\F" and (
        primary is not None and primary[0] < 0)
    if flipped:
        pixels = pixels[..., ::-1]

    # Every frame preprocessed together, then reduced to one.
    pixels = _preprocess(pixels, crop, subtract_background, linearize)
    if pixels.shape[0] == 1:
        pixels = pixels[0]
    elif frames == "max":
        pixels = pixels.max(axis=0)
    elif frames == "sum":
        pixels = pixels.sum(axis=0)
    else:
        pixels = pixels[frames]
    intrinsics = Intrinsics(sdd=sdd[0], delx=spacing[1], dely=spacing[0], x0=origin[1],
                            y0=origin[0], height=pixels.shape[0], width=pixels.shape[1])
    distance = numbers(_SOURCE_TO_PATIENT)
    pose = None
    if primary is not None and secondary is not None and distance is not None:
        side = -1.0 if orientation == "PA" else 1.0
        pose = Pose(rotation=(primary[0], secondary[0], 0.0),
                    translation=(0.0, side * distance[0], 0.0), orientation=orientation,
                    parameterization="euler", convention="ZXY", degrees=True)
    return XRay(np.ascontiguousarray(pixels, dtype=np.float32), intrinsics, pose, flipped)


def _preprocess(pixels: npt.NDArray[np.float64], crop: int, subtract_background: bool,
                linearize: bool) -> npt.NDArray[np.float64]:
    """read_xray's preprocessing of the frames (frames, H, W), together."""
    if crop:
        height, width = pixels.shape[-2:]
        start = int(round(crop / 2.0))  # as torchvision's center_crop
        pixels = pixels[:, start:start + height - crop, start:start + width - crop]
    pixels = (pixels - pixels.min()) / (pixels.max() - pixels.min() + 1e-6)
    if subtract_background:
        values, counts = np.unique(pixels, return_counts=True)
        pixels = np.clip(pixels - values[np.argmax(counts)], -1.0, 0.0) + 1.0
    if linearize:
        pixels = np.log((pixels + 1).max()) - np.log(pixels + 1)
    return pixels
