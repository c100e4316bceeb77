"""What the tracking store records of a data set, without its values: name, fingerprint, and the
shapes and dtypes of its features and targets. Small and picklable, so the tracking process
(:mod:`sweep.tracking.tracking_process`) gets it without a copy of the data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DatasetFacts:
    name: str  # a CSV path, a bundled set's name or a data factory's reference
    fingerprint: str
    x_shape: tuple[int, ...]
    x_dtype: str
    y_shape: tuple[int, ...]
    y_dtype: str

    @classmethod
    def of(cls, dataset: object) -> DatasetFacts:
        """The facts of a :class:`trainers.data.Dataset` (anything with ``name``,
        ``fingerprint``, ``X`` and ``y``)."""
        X, y = np.asarray(dataset.X), np.asarray(dataset.y)  # type: ignore[attr-defined]
        return cls(
            name=dataset.name,  # type: ignore[attr-defined]
            fingerprint=dataset.fingerprint,  # type: ignore[attr-defined]
            x_shape=tuple(X.shape),
            x_dtype=X.dtype.str,
            y_shape=tuple(y.shape),
            y_dtype=y.dtype.str,
        )

    def stand_ins(self) -> tuple[np.ndarray, np.ndarray]:
        """Read-only arrays of the data's shapes and dtypes that hold one zero each (stride 0):
        what a schema or profile needs, at no memory cost.

        Example:
            >>> features, _ = DatasetFacts("d", "f", (1000, 10), "<f4", (1000,), "<i8").stand_ins()
            >>> features.shape, features.dtype, features.nbytes
            ((1000, 10), dtype('float32'), 40000)
        """
        return _zeros(self.x_shape, self.x_dtype), _zeros(self.y_shape, self.y_dtype)


def _zeros(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    one = np.zeros(1, dtype=np.dtype(dtype))
    view = np.lib.stride_tricks.as_strided(one, shape=shape, strides=(0,) * len(shape))
    view.flags.writeable = False
    return view
