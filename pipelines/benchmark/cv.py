"""Cross-validation folds of contiguous row blocks in file order, as the USS authors split turns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    """Row indices of one cross-validation fold: `train` and `test` never overlap."""

    number: int
    train: np.ndarray
    test: np.ndarray


def contiguous_folds(n_rows: int, n_folds: int) -> list[Fold]:
    """Split rows 0..n_rows-1 into `n_folds` contiguous test blocks in order.

    Block sizes differ by at most one row, and every row is tested exactly once.
    """
    if n_folds < 2:
        raise ValueError(f"invalid number of folds {n_folds}; use 2 or more")
    if n_rows < n_folds:
        raise ValueError(f"cannot split {n_rows} rows into {n_folds} folds; every fold needs at "
                         "least one row, so use fewer folds or more data")

    rows = np.arange(n_rows)
    folds = []
    for number, test in enumerate(np.array_split(rows, n_folds)):
        train = np.concatenate([rows[:test[0]], rows[test[-1] + 1:]])
        folds.append(Fold(number=number, train=train, test=test))
    return folds


def contiguous_subfolds(rows: np.ndarray, n_folds: int) -> list[Fold]:
    """Split the given row indices (kept in their order) into contiguous inner folds.

    Used for nested selection: the returned indices are values of `rows`, so a model chosen on
    these folds is fitted and scored on rows of `rows` only.
    """
    return [
        Fold(number=fold.number, train=rows[fold.train], test=rows[fold.test])
        for fold in contiguous_folds(len(rows), n_folds)
    ]
