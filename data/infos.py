"""Optional per-step infos of a dataset: their layout, flattening, and assembly from episodes.

**Layout (one convention for every source).** An info is one flat array per key, numeric or
``bool``, laid out exactly like the dataset's ``observations``: row ``i`` of an info belongs to
observation row ``i``. Per episode that is ``T + 1`` rows when the dataset keeps the observation
after the last action, else ``T``; gymnasium returns one info with every observation (``reset``
gives the first), and Minari stores them that way, so Minari's ``T + 1`` infos are kept as they
are. Sources are converted on the way in:

- ``T + 1`` rows into a dataset of ``T`` observations per episode: the last row is dropped;
- ``T`` rows into a dataset of ``T + 1`` observations per episode (D4RL files with
  ``next_observations``, trajectories whose infos have one row per action): the final row is a
  copy of the last one, and the key is listed in ``metadata.extra["infos_final_row_repeated"]``.

Nested dicts are flattened with ``/`` (``{"a": {"b": x}}`` -> ``"a/b"``) and written back
nested. Infos are carried as they are: unlike the required keys, they are not checked for NaN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from seqrl.errors import DataError

SEP = "/"


def is_info_dtype(dtype: np.dtype) -> bool:
    """Whether an info array of this dtype can be carried (numbers and ``bool``)."""
    return bool(np.issubdtype(dtype, np.number) or dtype == np.bool_)


def flatten_infos(infos: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}, "c": y}`` -> ``{"a/b": x, "c": y}`` (values untouched)."""
    flat: dict[str, Any] = {}
    for key, value in (infos or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_infos(value, prefix=name + SEP))
        else:
            flat[name] = value
    return flat


def nest_infos(flat: Mapping[str, np.ndarray], where: str) -> dict[str, Any]:
    """Inverse of :func:`flatten_infos`; :class:`DataError` if a key is both a leaf and a group."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(SEP)
        if any(not p for p in parts):
            raise DataError(f"{where}: info '{key}' has an empty name part")
        node = nested
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise DataError(f"{where}: info '{key}' nests under info '{part}', an array")
            node = child
        if parts[-1] in node:
            raise DataError(f"{where}: info '{key}' is both an array and a group of infos")
        node[parts[-1]] = value
    return nested


def info_file_names(keys: list[str]) -> dict[str, str]:
    """A distinct ``info.<key>.npy`` file name per key (characters other than ``[A-Za-z0-9_-]``
    become ``_``; a numeric suffix separates keys that would collide)."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for key in keys:
        stem = "info." + re.sub(r"[^A-Za-z0-9_-]", "_", key)
        name, n = f"{stem}.npy", 1
        while name.lower() in taken:  # case-insensitive file systems too
            name, n = f"{stem}.{n}.npy", n + 1
        taken.add(name.lower())
        names[key] = name
    return names


def fit_rows(value: np.ndarray, steps: int, final: bool) -> np.ndarray | None:
    """One episode's info converted to the dataset layout (``steps + 1`` rows when ``final``,
    else ``steps``); ``None`` if it has neither ``steps`` nor ``steps + 1`` rows."""
    rows = len(value)
    if rows == steps + final:
        return value
    if rows == steps + 1:  # and not final
        return value[:steps]
    if rows == steps:  # and final
        return np.concatenate([value, value[-1:]])
    return None


class InfoAssembler:
    """Fills flat info arrays episode by episode (preallocated, in the layout described above).

    Args:
        where: the file or dataset id, for messages.
        total_rows: rows of the finished arrays (the dataset's observation rows).
        final: whether the dataset keeps ``T + 1`` observations per episode.
        strict: raise a :class:`DataError` naming the key on any mismatch; otherwise the key is
            dropped and its reason kept in :attr:`skipped`.
        dtypes: the dtype per key if known beforehand (else the first episode's).
    """

    def __init__(
        self,
        where: str,
        total_rows: int,
        final: bool,
        strict: bool,
        dtypes: Mapping[str, np.dtype] | None = None,
    ) -> None:
        self.where = where
        self.total_rows = int(total_rows)
        self.final = final
        self.strict = strict
        self.dtypes = dict(dtypes or {})
        self.arrays: dict[str, np.ndarray] = {}
        self.skipped: dict[str, str] = {}
        self.repeated: set[str] = set()
        self._episodes = 0
        self._row = 0

    def _reject(self, key: str, reason: str) -> None:
        if self.strict:
            raise DataError(f"{self.where}: info '{key}' {reason}")
        self.arrays.pop(key, None)
        self.repeated.discard(key)
        self.skipped.setdefault(key, reason)

    def add(self, infos: Mapping[str, Any] | None, steps: int) -> None:
        """Add the next episode's infos (nested dicts allowed); ``steps``: its number of actions."""
        e, lo = self._episodes, self._row
        hi = lo + steps + int(self.final)
        if hi > self.total_rows:
            raise DataError(f"{self.where}: episode {e} runs past {self.total_rows} rows")
        self._episodes += 1
        self._row = hi
        flat = flatten_infos(infos)
        if e > 0:
            for key in sorted(set(self.arrays) - set(flat)):
                self._reject(key, f"is missing from episode {e} (episode 0 has it)")
        for key, raw in flat.items():
            if key in self.skipped:
                continue
            if e > 0 and key not in self.arrays:
                self._reject(key, f"is in episode {e} but not in episode 0")
                continue
            value = np.asarray(raw)
            if not is_info_dtype(value.dtype):
                self._reject(
                    key, f"has dtype {value.dtype} in episode {e}; expected numbers or bool"
                )
                continue
            if value.ndim == 0:
                self._reject(key, f"is a scalar in episode {e}; expected one row per step")
                continue
            fitted = fit_rows(value, steps, self.final)
            if fitted is None:
                self._reject(
                    key,
                    f"has {len(value)} rows in episode {e} of {steps} steps; expected "
                    f"{steps} or {steps + 1}",
                )
                continue
            if e == 0:
                dtype = self.dtypes.get(key, value.dtype)
                self.arrays[key] = np.empty((self.total_rows, *value.shape[1:]), dtype=dtype)
            target = self.arrays[key]
            if value.shape[1:] != target.shape[1:]:
                self._reject(
                    key,
                    f"has per-step shape {value.shape[1:]} in episode {e} but "
                    f"{target.shape[1:]} in episode 0",
                )
                continue
            if not np.can_cast(value.dtype, target.dtype, "same_kind"):
                self._reject(
                    key, f"has dtype {value.dtype} in episode {e} but {target.dtype} in episode 0"
                )
                continue
            if fitted is not value and len(value) == steps:
                self.repeated.add(key)
            target[lo:hi] = fitted

    def result(self) -> dict[str, np.ndarray]:
        """The flat arrays, keys in first-seen order."""
        if self._row != self.total_rows:
            raise DataError(f"{self.where}: infos cover {self._row} of {self.total_rows} rows")
        return self.arrays


def record_conversions(extra: dict[str, Any], repeated: set[str], skipped: dict[str, str]) -> None:
    """Note in ``metadata.extra`` which infos got a copied final row and which were skipped."""
    if repeated:
        extra["infos_final_row_repeated"] = sorted(repeated)
    if skipped:
        extra["skipped_infos"] = dict(sorted(skipped.items()))
