"""Inputs as numpy arrays, whether numpy or torch gives them."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def as_array(value: Any, dtype: npt.DTypeLike | None = None) -> npt.NDArray[Any]:
    """``value`` as numpy takes it, and a torch tensor (on any device, tracked by autograd or
    not) as its values on the host: every call of drrclient takes numpy and torch inputs alike."""
    detach = getattr(value, "detach", None)
    if callable(detach) and hasattr(value, "cpu"):
        value = detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)
