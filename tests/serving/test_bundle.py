"""Tests that serving refuses a bundle whose files or feature schema differ from its manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from serving.bundle import MANIFEST_FILE, find_latest_bundle, load_manifest
from serving.errors import BundleError, BundleIntegrityError, FeatureSchemaError
from serving.scorer import Scorer
from tests.conftest import TrainedBundle


@pytest.fixture()
def bundle_copy(trained_bundle: TrainedBundle, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(trained_bundle.path, target)
    return target


def _edit_manifest(bundle: Path, **changes: object) -> None:
    path = bundle / MANIFEST_FILE
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_changed_file_rejected_with_name(bundle_copy: Path) -> None:
    with (bundle_copy / "escalation.onnx").open("ab") as handle:
        handle.write(b"\0")

    with pytest.raises(BundleIntegrityError, match="escalation.onnx has sha256"):
        Scorer(bundle_copy)


def test_missing_file_rejected_with_name(bundle_copy: Path) -> None:
    (bundle_copy / "tokenizer.json").unlink()

    with pytest.raises(BundleIntegrityError, match="file tokenizer.json is missing"):
        load_manifest(bundle_copy)


def test_reordered_features_rejected(bundle_copy: Path) -> None:
    names = json.loads((bundle_copy / MANIFEST_FILE).read_text())["feature_names"]
    names[-1], names[-2] = names[-2], names[-1]
    _edit_manifest(bundle_copy, feature_names=names)

    with pytest.raises(FeatureSchemaError, match=f"feature {len(names) - 2} is"):
        load_manifest(bundle_copy)


def test_fewer_features_rejected(bundle_copy: Path) -> None:
    names = json.loads((bundle_copy / MANIFEST_FILE).read_text())["feature_names"]
    _edit_manifest(bundle_copy, feature_names=names[:-1])

    with pytest.raises(FeatureSchemaError, match="retrain the bundle"):
        load_manifest(bundle_copy)


def test_other_feature_schema_version_rejected(bundle_copy: Path) -> None:
    _edit_manifest(bundle_copy, feature_schema_version="0")

    with pytest.raises(FeatureSchemaError, match="feature schema '0'"):
        load_manifest(bundle_copy)


def test_path_outside_bundle_rejected(bundle_copy: Path) -> None:
    files = json.loads((bundle_copy / MANIFEST_FILE).read_text())["files"]
    files["../outside.onnx"] = "0" * 64
    _edit_manifest(bundle_copy, files=files)

    with pytest.raises(BundleIntegrityError, match="leaves the bundle"):
        load_manifest(bundle_copy)


def test_missing_manifest_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="run `make run` first"):
        load_manifest(tmp_path)


def test_latest_bundle_found(trained_bundle: TrainedBundle) -> None:
    assert find_latest_bundle(trained_bundle.path.parent) == trained_bundle.path


def test_no_bundle_found(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no model bundle found"):
        find_latest_bundle(tmp_path)


def test_with_policy_shares_sessions(trained_bundle: TrainedBundle) -> None:
    from serving.policy import Thresholds
    from serving.rules import load_policy

    scorer = Scorer(trained_bundle.path)
    policy = load_policy().model_copy(update={"thresholds": Thresholds(escalation=0.9,
                                                                       prepare=0.5)})

    twin = scorer.with_policy(policy)

    assert twin.encoder is scorer.encoder
    assert twin.heads is scorer.heads
    assert twin.policy is policy
    assert twin.thresholds.escalation == 0.9
    assert twin.thresholds.prepare == 0.5
    assert scorer.thresholds.escalation == scorer.manifest.thresholds.escalation
