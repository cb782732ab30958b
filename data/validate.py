"""Checks on arrays read from files, each failing with one line that names the file and the key."""

from __future__ import annotations

from typing import Literal

import numpy as np
from seqrl.errors import DataError

Kind = Literal["float", "number", "flag", "index"]


def check_array(
    where: str,
    key: str,
    array: np.ndarray,
    kind: Kind,
    rows: int | None = None,
    reference: str = "observations",
) -> np.ndarray:
    """Check one array's dtype, length and finiteness; returns it unchanged.

    Args:
        where: the file or dataset id, for the message.
        key: the array's key in the file.
        array: the array (its first axis is time).
        kind: ``float`` (real numbers, finite), ``number`` (int or float, finite), ``flag``
            (bool or 0/1 integers/floats), ``index`` (integers, e.g. discrete actions).
        rows: the expected length of the first axis, if known (the length of ``reference``).
        reference: the key that gave ``rows``, for the message.
    """
    dtype = array.dtype
    if array.ndim == 0:
        raise DataError(f"{where}: key '{key}' is a scalar; expected one row per step")
    if len(array) == 0:
        raise DataError(f"{where}: key '{key}' is empty (0 rows)")
    if rows is not None and len(array) != rows:
        raise DataError(f"{where}: key '{key}' has {len(array)} rows but '{reference}' has {rows}")
    numeric = np.issubdtype(dtype, np.number) or dtype == np.bool_
    if not numeric:
        raise DataError(f"{where}: key '{key}' has dtype {dtype}; expected a numeric array")
    if kind == "index" and not np.issubdtype(dtype, np.integer):
        raise DataError(f"{where}: key '{key}' has dtype {dtype}; expected integers")
    if kind == "flag" and dtype != np.bool_:
        values = np.unique(array)
        if not np.all(np.isin(values, (0, 1))):
            raise DataError(
                f"{where}: key '{key}' holds values other than 0 and 1 (e.g. {values[0]})"
            )
    if np.issubdtype(dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            row = int(np.argmin(finite.reshape(len(array), -1).all(axis=1)))
            raise DataError(f"{where}: key '{key}' contains NaN or inf (first at row {row})")
    return array
