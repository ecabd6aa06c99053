"""Metrics of per-turn user satisfaction prediction as Sun et al. report them (SIGIR 2021).

Ratings are the five levels 1-5. UAR is the unweighted average recall over the five levels,
Cohen's kappa and Spearman's rho compare predicted with gold ratings, and the
"dissatisfied" F1 treats ratings of 2 or lower as the positive class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score, f1_score, recall_score

RATINGS = (1, 2, 3, 4, 5)
DISSATISFIED_AT_OR_BELOW = 2


def satisfaction_metrics(gold: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    """Return `uar`, `kappa`, `rho` and `f1_dissatisfied` for 1-5 ratings of user turns.

    UAR averages recall over the rating levels present in `gold`, because recall of an absent
    level is undefined. rho is nan when either side is constant.
    """
    truth = np.asarray(gold, dtype=int)
    guess = np.asarray(predicted, dtype=int)
    if truth.shape != guess.shape or truth.ndim != 1 or truth.size == 0:
        raise ValueError(f"gold and predicted must be non-empty 1-d arrays of one length, got "
                         f"shapes {list(truth.shape)} and {list(guess.shape)}")
    for name, values in (("gold", truth), ("predicted", guess)):
        invalid = sorted(set(np.unique(values).tolist()) - set(RATINGS))
        if invalid:
            raise ValueError(f"{name} contains invalid ratings {invalid}; ratings must be "
                             "integers 1 to 5")

    present = sorted(set(truth.tolist()))
    uar = float(recall_score(truth, guess, labels=present, average="macro", zero_division=0))
    kappa = float(cohen_kappa_score(truth, guess, labels=list(RATINGS)))
    if len(np.unique(truth)) < 2 or len(np.unique(guess)) < 2:
        rho = math.nan
    else:
        rho = float(spearmanr(truth, guess).statistic)
    f1_dissatisfied = float(f1_score(truth <= DISSATISFIED_AT_OR_BELOW,
                                     guess <= DISSATISFIED_AT_OR_BELOW, zero_division=0))
    return {"uar": uar, "kappa": kappa, "rho": rho, "f1_dissatisfied": f1_dissatisfied,
            "n": int(truth.size)}
