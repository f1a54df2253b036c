"""Volumes as drrserve stores them: voxels V[k, j, i] (i fastest) plus a
voxel->world affine, identified by a content digest the client can compute."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from drrclient._arrays import as_array
from drrclient._enums import pick
from drrclient._proto.drr.v1 import volumes_pb2

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

# numpy dtype -> wire voxel type. Other dtypes are converted first (see as_wire_voxels).
_VOXEL_TYPES = {
    np.dtype("<i2"): volumes_pb2.VOXEL_TYPE_INT16,
    np.dtype("u1"): volumes_pb2.VOXEL_TYPE_UINT8,
    np.dtype("<u2"): volumes_pb2.VOXEL_TYPE_UINT16,
    np.dtype("<i4"): volumes_pb2.VOXEL_TYPE_INT32,
    np.dtype("<f4"): volumes_pb2.VOXEL_TYPE_FLOAT32,
}


def as_wire_voxels(voxels: npt.ArrayLike) -> npt.NDArray[Any]:
    """A C-contiguous little-endian (D, H, W) array of a type the server takes:
    int16, uint8, uint16, int32 or float32 as they are; int8 and bool widen
    losslessly; float64 and other floats become float32."""
    array = as_array(voxels)
    if array.ndim != 3:
        raise ValueError(f"a volume must be 3-D (D, H, W), got shape {array.shape}")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.int8:
        array = array.astype(np.int16)
    elif array.dtype.kind == "f" and array.dtype.itemsize != 4:
        array = array.astype(np.float32)
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    if array.dtype not in _VOXEL_TYPES:
        raise TypeError(f"voxel dtype {array.dtype} is not supported")
    return np.ascontiguousarray(array)


def as_wire_labels(labels: npt.ArrayLike, shape: Sequence[int]) -> npt.NDArray[Any]:
    """Class indices of `shape` as C-contiguous uint8 (all below 256) or
    little-endian uint16; other integer or integral-valued types convert."""
    array = as_array(labels)
    if array.shape != tuple(shape):
        raise ValueError(f"labels have shape {array.shape}, the volume {tuple(shape)}")
    if array.size and (array.min() < 0 or array.max() > 65535 or
                       not np.array_equal(array, np.floor(array))):
        raise ValueError("labels must be class indices in [0, 65535]")
    dtype = np.uint8 if array.size == 0 or array.max() < 256 else np.dtype("<u2")
    return np.ascontiguousarray(array.astype(dtype))


def header_proto(voxels: npt.NDArray[Any], affine: npt.ArrayLike, value_kind: str = "hu",
                 labels: npt.NDArray[Any] | None = None) -> volumes_pb2.VolumeHeader:
    """The wire header of wire-ready voxels and labels (see as_wire_voxels,
    as_wire_labels)."""
    matrix = as_array(affine, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"affine must be 4x4 voxel->world, got shape {matrix.shape}")
    return volumes_pb2.VolumeHeader(
        shape=list(voxels.shape), voxel_type=_VOXEL_TYPES[voxels.dtype],
        affine=matrix.ravel().tolist(),
        value_kind=pick(volumes_pb2.ValueKind.DESCRIPTOR, value_kind, "value_kind"),
        label_type=(volumes_pb2.VOXEL_TYPE_UNSPECIFIED if labels is None
                    else _VOXEL_TYPES[labels.dtype]))


def canonical_header_bytes(header: volumes_pb2.VolumeHeader) -> bytes:
    """The header bytes the content digest covers (see volumes.proto)."""
    return struct.pack("<8sIII3q16d", b"DRRVOL1\0", header.voxel_type,
                       header.value_kind or volumes_pb2.VALUE_KIND_HU, header.label_type,
                       *header.shape, *header.affine)


def volume_id(voxels: npt.ArrayLike, affine: npt.ArrayLike, value_kind: str = "hu",
              labels: npt.ArrayLike | None = None) -> str:
    """The id the server will give this volume, computed locally."""
    array = as_wire_voxels(voxels)
    label_array = None if labels is None else as_wire_labels(labels, array.shape)
    digest = hashlib.sha256(
        canonical_header_bytes(header_proto(array, affine, value_kind, label_array)))
    digest.update(array.data.cast("B"))
    if label_array is not None:
        digest.update(label_array.data.cast("B"))
    return digest.hexdigest()


def load_nifti(path: str | os.PathLike[str]) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    """(voxels (D, H, W), affine) of a NIfTI file, as the server reads it;
    needs nibabel."""
    import nibabel

    # nibabel.load returns a FileBasedImage; a NIfTI file is a SpatialImage (voxels and affine).
    image = cast("SpatialImage", nibabel.load(path))
    voxels = np.asanyarray(image.dataobj)
    if voxels.ndim > 3:
        voxels = voxels.reshape(voxels.shape[:3])
    return np.ascontiguousarray(voxels.transpose(2, 1, 0)), image.affine


# What load_volume reads with SimpleITK, by file name ending.
_ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def load_volume(path: str | os.PathLike[str],
                series: str | None = None) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
    """(voxels (D, H, W), voxel->world affine in RAS) of a CT volume in any of the usual formats:
    NIfTI (.nii, .nii.gz) with nibabel; with SimpleITK (the package's ``itk`` extra,
    ``pip install 'client/python[itk]'``) a DICOM series (a directory of its slices, or one of its
    .dcm files; ``series`` picks one of several series by its UID), NRRD (.nrrd, .nhdr) or
    MetaImage (.mha, .mhd). DICOM values come as Hounsfield units (rescale slope and intercept
    applied), the other formats' as stored; integer voxels as int16 when that loses nothing.
    ITK's LPS geometry is turned into RAS once, here, so that every format gives the affine
    load_nifti gives."""
    name = os.fspath(path)
    lowered = name.lower()
    if lowered.endswith((".nii", ".nii.gz")):
        return load_nifti(name)
    if not (os.path.isdir(name) or lowered.endswith(_ITK_SUFFIXES)):
        raise ValueError(f"{name}: not a NIfTI, NRRD, MetaImage or DICOM file, nor a directory "
                         "of DICOM slices")
    image = _read_dicom_series(name, series) if (
        os.path.isdir(name) or lowered.endswith(".dcm")) else _itk().ReadImage(name)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(f"{name}: a volume must be 3-D with one value per voxel")
    voxels = _itk().GetArrayFromImage(image)  # (D, H, W), x fastest
    if voxels.dtype.kind in "iu" and voxels.size and (
            voxels.min() >= np.iinfo(np.int16).min and voxels.max() <= np.iinfo(np.int16).max):
        voxels = voxels.astype(np.int16)
    return np.ascontiguousarray(voxels), ras_affine(image)


def ras_affine(image: Any) -> npt.NDArray[np.float64]:
    """The voxel->world affine (RAS, as NIfTI's) of a SimpleITK image, whose origin, spacing and
    direction cosines are in LPS."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)
    lps[:3, 3] = image.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _read_dicom_series(path: str, series: str | None) -> Any:
    """The DICOM series of the slices in ``path`` (a directory, or the directory of a slice
    file, whose own series it is unless ``series`` says otherwise), slices sorted by position;
    ``series`` chooses among several."""
    sitk = _itk()
    directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
    found = sitk.ImageSeriesReader.GetGDCMSeriesIDs(directory)
    if not found:
        raise ValueError(f"{directory}: no DICOM series")
    if series is None and not os.path.isdir(path):
        slice_reader = sitk.ImageFileReader()
        slice_reader.SetFileName(path)
        slice_reader.ReadImageInformation()
        series = slice_reader.GetMetaData("0020|000e").strip()  # SeriesInstanceUID
    if series is None:
        if len(found) > 1:
            raise ValueError(f"{directory} holds {len(found)} DICOM series; choose one with "
                             f"series=: {', '.join(found)}")
        series = found[0]
    elif series not in found:
        raise ValueError(f"{directory} holds no DICOM series {series}")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(directory, series))
    return reader.Execute()


def _itk() -> Any:
    """SimpleITK, or an ImportError saying how to install it."""
    try:
        import SimpleITK
    except ImportError as error:
        raise ImportError("reading DICOM, NRRD and MetaImage needs SimpleITK (drrclient's itk "
                          "extra): pip install SimpleITK") from error
    return SimpleITK
