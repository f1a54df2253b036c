"""An independent numpy DRR renderer, written from nanodrr's torch backend
(``render_torch``: K^-1 rays, ``make_rt_inv``, grid_sample trilinear with zero
padding over all n samples of the source->detector segment) in float64, with
no code shared with drrserve. The tests compare the server against it."""

import numpy as np

REORIENT = {
    "AP": np.array([[-1, 0, 0, 0], [0, 0, -1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float),
    "PA": np.array([[-1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], float),
    None: np.array([[-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float),
}


def hu_to_mu(hu, mu_water=0.0192, mu_bone=0.0573, hu_bone=1000.0):
    hu = np.maximum(np.asarray(hu, np.float64), -1000.0)
    mu = np.where(hu <= 0, mu_water * (1 + hu / 1000.0),
                  mu_water + (mu_bone - mu_water) * hu / hu_bone)
    return np.maximum(mu, 0.0)


def euler_zxy(rz, rx, ry):
    """R = Rz @ Rx @ Ry for angles in degrees (roma's intrinsic "ZXY")."""
    z, x, y = np.deg2rad([rz, rx, ry])
    Rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    Ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    return Rz @ Rx @ Ry


def make_rt_inv(rotation, translation, orientation, isocenter):
    R = euler_zxy(*rotation)
    pose = np.eye(4)
    pose[:3, :3] = R
    pose[:3, 3] = R @ np.asarray(translation, float) + np.asarray(isocenter, float)
    return pose @ REORIENT[orientation]


def make_k_inv(sdd, delx, dely, x0, y0, height, width):
    K = np.array([[sdd / delx, 0, x0 / delx + width / 2],
                  [0, sdd / dely, y0 / dely + height / 2], [0, 0, 1]])
    return np.linalg.inv(K)


def volume_center(shape_dhw, affine):
    d, h, w = shape_dhw
    return (affine @ np.array([(w - 1) / 2, (h - 1) / 2, (d - 1) / 2, 1.0]))[:3]


def trilinear_zeros(volume, points):
    """grid_sample(align_corners=False, padding zeros) at voxel coordinates
    (x, y, z) = (i, j, k) of volume[k, j, i]."""
    d, h, w = volume.shape
    base = np.floor(points)
    frac = points - base
    base = base.astype(np.int64)
    out = np.zeros(points.shape[:-1])
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                i, j, k = base[..., 0] + dx, base[..., 1] + dy, base[..., 2] + dz
                weight = ((frac[..., 0] if dx else 1 - frac[..., 0])
                          * (frac[..., 1] if dy else 1 - frac[..., 1])
                          * (frac[..., 2] if dz else 1 - frac[..., 2]))
                inside = (i >= 0) & (i < w) & (j >= 0) & (j < h) & (k >= 0) & (k < d)
                values = volume[np.clip(k, 0, d - 1), np.clip(j, 0, h - 1), np.clip(i, 0, w - 1)]
                out += np.where(inside, weight * values, 0.0)
    return out


def render(mu, affine, rt_inv, k_inv, sdd, height, width, n_samples=500, rays_per_chunk=2000):
    """The (height, width) line-integral image of one pose, float64."""
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    uv1 = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3)
    tgt = sdd * uv1 @ k_inv.T
    src = np.zeros_like(tgt)
    step = np.linalg.norm(tgt - src, axis=-1) / (n_samples - 1)
    xform = np.linalg.inv(affine) @ rt_inv
    src_v = src @ xform[:3, :3].T + xform[:3, 3]
    tgt_v = tgt @ xform[:3, :3].T + xform[:3, 3]
    t = np.linspace(0.0, 1.0, n_samples)[:, None, None]
    image = np.empty(len(tgt))
    for start in range(0, len(tgt), rays_per_chunk):
        a, b = src_v[start:start + rays_per_chunk], tgt_v[start:start + rays_per_chunk]
        points = a[None] + t * (b - a)[None]
        image[start:start + rays_per_chunk] = trilinear_zeros(mu, points).sum(axis=0)
    return (image * step).reshape(height, width)
