"""Hand-computed checks of the MHCH handoff metrics: F1, Macro F1, AUC and GT-T."""

from __future__ import annotations

import math

import pytest

from pipelines.evaluate.handoff_metrics import (
    golden_transfer_within_tolerance,
    handoff_auc,
    handoff_f1,
    macro_f1,
)


def test_handoff_f1_on_handoff_class() -> None:
    # Handoff class: 1 true positive, 0 false positives, 1 false negative -> P 1, R 0.5.
    assert handoff_f1([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(2 / 3)


def test_macro_f1_is_harmonic_mean_of_macro_scores() -> None:
    # Class 1: P 1, R 1/2. Class 0: P 2/3, R 1. Macro P 5/6, macro R 3/4.
    # 2 * 5/6 * 3/4 / (5/6 + 3/4) = 15/19.
    assert macro_f1([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(15 / 19)


def test_macro_f1_differs_from_mean_of_f1() -> None:
    # Mean of per-class F1 would be (2/3 + 4/5) / 2 = 11/15, not 15/19.
    assert macro_f1([1, 1, 0, 0], [1, 0, 0, 0]) != pytest.approx(11 / 15)


def test_auc_of_perfect_ranking() -> None:
    assert handoff_auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == pytest.approx(1.0)


def test_auc_one_class_is_nan() -> None:
    assert math.isnan(handoff_auc([0, 0], [0.1, 0.2]))


def test_gt_one_step_early() -> None:
    # p = 1, q = 2, t = 1: exp(-1 / 2) = 0.60653.
    score = golden_transfer_within_tolerance([[0, 0, 1, 0]], [[0, 1, 0, 0]], tolerance=1)

    assert score == pytest.approx(100 * math.exp(-0.5))


def test_gt_empty_sides() -> None:
    # Neither side has a handoff: 1. Only gold has one: 0. Mean 0.5.
    score = golden_transfer_within_tolerance([[0, 0], [1, 0]], [[0, 0], [0, 0]], tolerance=2)

    assert score == pytest.approx(50.0)


def test_gt_asymmetry_punishes_late_more() -> None:
    # lambda 0.5, t 1. Late p = 3, q = 2: exponent 0.5 / (1 - 0.5) = 1, score exp(-1).
    # Early p = 1, q = 2: exponent 0.5 / (1 + 0.5) = 1/3, score exp(-1/3).
    late = golden_transfer_within_tolerance([[0, 0, 1, 0]], [[0, 0, 0, 1]], tolerance=1,
                                            asymmetry=0.5)
    early = golden_transfer_within_tolerance([[0, 0, 1, 0]], [[0, 1, 0, 0]], tolerance=1,
                                             asymmetry=0.5)

    assert late == pytest.approx(100 * math.exp(-1))
    assert early == pytest.approx(100 * math.exp(-1 / 3))


def test_gt_mean_over_predicted_positions() -> None:
    # Gold at 0 and 4, predicted at 0 and 2, t = 2. p = 0 matches q = 0: 1.
    # p = 2 is 2 away from both: exp(-4 / 8) = 0.60653. Mean (1 + 0.60653) / 2.
    score = golden_transfer_within_tolerance([[1, 0, 0, 0, 1]], [[1, 0, 1, 0, 0]], tolerance=2)

    assert score == pytest.approx(100 * (1 + math.exp(-0.5)) / 2)


def test_gt_exact_match_is_100() -> None:
    assert golden_transfer_within_tolerance([[0, 1, 1]], [[0, 1, 1]], tolerance=1) == 100.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"tolerance": 0}, "tolerance is 0"),
        ({"tolerance": 1, "asymmetry": 1.0}, "asymmetry is 1.0"),
    ],
)
def test_gt_invalid_settings_rejected(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        golden_transfer_within_tolerance([[1]], [[1]], **arguments)


def test_gt_length_mismatch_names_dialogue() -> None:
    with pytest.raises(ValueError, match="dialogue 1: 2 gold labels but 3"):
        golden_transfer_within_tolerance([[0], [1, 0]], [[0], [1, 0, 0]], tolerance=1)


def test_labels_must_be_binary() -> None:
    with pytest.raises(ValueError, match=r"y_pred contains invalid labels \[2\]"):
        handoff_f1([0, 1], [0, 2])


def test_trivial_floors_match_published_scale() -> None:
    """Handing off everywhere and never should land near the floors Liu et al. report on the
    Clothing test split (GT-III 66.9, Macro F1 44.7); this is the eval split of the same
    release, so only closeness is checked."""
    from pipelines.datasets.mhch import read_mhch
    from pipelines.datasets.paths import shared_datasets_dir

    shared = shared_datasets_dir()
    path = shared / "mhch_dami" / "clothing_eval.jsonl.gz" if shared else None
    if path is None or not path.is_file():
        pytest.skip("the MHCH corpus is not bundled; it is read from ../shared/datasets")

    gold = [[int(bool(turn.labels and turn.labels.handoff)) for turn in conversation.turns]
            for conversation in read_mhch(path)]
    always = [[1] * len(labels) for labels in gold]
    flat_gold = [label for labels in gold for label in labels]

    assert golden_transfer_within_tolerance(gold, always, tolerance=3) == pytest.approx(66.9,
                                                                                       abs=1.0)
    assert 100 * macro_f1(flat_gold, [0] * len(flat_gold)) == pytest.approx(44.7, abs=1.0)
