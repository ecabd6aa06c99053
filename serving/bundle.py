"""Model bundle: the folder of ONNX graphs, encoder files and manifest that training writes.

Serving trusts nothing but the bundle, and the bundle only after `load_manifest` has checked
every file's sha256 and that the feature names match what `serving.features` computes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from serving.errors import BundleError, BundleIntegrityError, FeatureSchemaError
from serving.features import EMBEDDING_DIMENSION, FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from serving.hashing import sha256_file
from serving.schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)

BUNDLE_FORMAT_VERSION = "1"
MANIFEST_FILE = "manifest.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncoderSpec(_Frozen):
    """The text encoder in the bundle.

    `kind` minilm is the ONNX sentence encoder: `file` is the graph and `tokenizer` its
    tokenizer. `kind` tokens is the language-agnostic TF-IDF encoder projected to `dimension`
    columns: `file` is its settings and vocabulary, `arrays` its idf and projection weights.
    """

    kind: Literal["minilm", "tokens"] = "minilm"
    file: str
    tokenizer: str | None = None
    arrays: list[str] = Field(default_factory=list)
    variant: Literal["fp32", "int8", "tfidf"]
    max_length: int | None = Field(default=None, gt=0)
    dimension: int = Field(gt=0)
    # Dynamic int8 quantisation scales activations over the whole batch tensor, so a text's
    # embedding depends on its batch neighbours unless texts are encoded one at a time.
    batch_size: int = Field(default=1, gt=0)
    source_model: str
    parity: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_kind(self) -> EncoderSpec:
        if self.kind == "minilm":
            if self.tokenizer is None or self.max_length is None or self.variant == "tfidf":
                raise ValueError("a minilm encoder needs a tokenizer file, max_length and the "
                                 "variant fp32 or int8")
        elif self.tokenizer is not None or self.variant != "tfidf" or not self.arrays:
            raise ValueError("a tokens encoder has the variant tfidf, its idf array files and "
                             "no tokenizer")
        return self

    def file_names(self) -> list[str]:
        """Return every bundle file the encoder reads."""
        names = [self.file, *self.arrays]
        if self.tokenizer is not None:
            names.append(self.tokenizer)
        return names


class HeadSpec(_Frozen):
    """One scikit-learn head exported to ONNX."""

    file: str
    input_name: str
    n_features: int = Field(gt=0)
    classes: list[str]
    parity_max_abs_diff: float = Field(ge=0.0)


class SimilarCasesSpec(_Frozen):
    """The nearest-neighbour index of resolved past conversations shipped in the bundle."""

    vectors: str
    cases: str
    count: int = Field(ge=0)


class Thresholds(_Frozen):
    """Probability thresholds chosen on the validation split."""

    escalation: float = Field(ge=0.0, le=1.0)
    prepare: float = Field(ge=0.0, le=1.0)
    frustration: float = Field(ge=0.0, le=1.0)


class MlflowRef(_Frozen):
    """Reference to the training run and the registered model in MLflow."""

    run_id: str
    experiment: str
    registered_model: str | None = None
    version: str | None = None


class Manifest(_Frozen):
    """Contents of a bundle, how it was trained, and the hashes that verify it."""

    bundle_format: str = BUNDLE_FORMAT_VERSION
    name: str
    created_at: datetime
    conversation_schema_version: str = SCHEMA_VERSION
    feature_schema_version: str = FEATURE_SCHEMA_VERSION
    feature_names: list[str]
    encoder: EncoderSpec
    heads: dict[str, HeadSpec]
    thresholds: Thresholds
    metrics: dict[str, Any] = Field(default_factory=dict)
    training_data: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str]
    similar_cases: SimilarCasesSpec | None = None
    mlflow: MlflowRef | None = None


REQUIRED_HEADS = ("sentiment", "frustration", "escalation")


def write_manifest(manifest: Manifest, bundle_dir: Path) -> Path:
    """Write `manifest.json` into the bundle folder and return its path."""
    path = bundle_dir / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def hash_bundle_files(bundle_dir: Path, names: list[str]) -> dict[str, str]:
    """Return {file name: sha256} for the named files of a bundle folder."""
    return {name: sha256_file(bundle_dir / name) for name in sorted(names)}


def load_manifest(bundle_dir: str | Path, *, verify: bool = True) -> Manifest:
    """Read a bundle's manifest and, unless `verify` is false, check the bundle against it.

    Raises BundleError when the manifest is missing or invalid, BundleIntegrityError when a file
    is missing or changed, and FeatureSchemaError when the bundle was trained on other features.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_FILE
    if not path.is_file():
        raise BundleError(
            f"no {MANIFEST_FILE} in {bundle_dir}; point to a bundle folder written by "
            "`escalation train` (for example models/escalation-<date>) or run `make run` first"
        )

    try:
        manifest = Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as error:
        raise BundleError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}); "
                          "retrain the bundle with `escalation train`") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in detail['loc']) or 'manifest'}: {detail['msg']}"
            for detail in error.errors(include_url=False))
        raise BundleError(f"{path} is not a valid manifest ({problems}); retrain the bundle "
                          "with `escalation train`") from None

    if verify:
        verify_bundle(manifest, bundle_dir)
    return manifest


def verify_bundle(manifest: Manifest, bundle_dir: Path) -> None:
    """Check the bundle format, feature schema, required heads and every file hash."""
    if manifest.bundle_format != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"bundle {bundle_dir} has format {manifest.bundle_format!r}, this code reads "
            f"{BUNDLE_FORMAT_VERSION!r}; retrain it with this version of escalation-scoring"
        )
    _verify_features(manifest, bundle_dir)

    missing_heads = [head for head in REQUIRED_HEADS if head not in manifest.heads]
    if missing_heads:
        raise BundleError(f"bundle {bundle_dir} lacks the head(s) {missing_heads}; retrain it")

    referenced = set(manifest.encoder.file_names())
    referenced.update(head.file for head in manifest.heads.values())
    if manifest.similar_cases is not None:
        referenced.update({manifest.similar_cases.vectors, manifest.similar_cases.cases})
    unlisted = sorted(referenced - set(manifest.files))
    if unlisted:
        raise BundleIntegrityError(
            f"bundle {bundle_dir}: {unlisted} are used but have no sha256 in the manifest; "
            "the manifest was edited by hand, retrain or restore it"
        )

    for name, expected in manifest.files.items():
        _verify_file(bundle_dir, name, expected)
    logger.info("bundle %s verified: %d files", manifest.name, len(manifest.files))


def _verify_features(manifest: Manifest, bundle_dir: Path) -> None:
    if manifest.feature_schema_version != FEATURE_SCHEMA_VERSION:
        raise FeatureSchemaError(
            f"bundle {bundle_dir} uses feature schema {manifest.feature_schema_version!r}, this "
            f"code computes {FEATURE_SCHEMA_VERSION!r}; retrain the bundle with this code"
        )
    if manifest.encoder.dimension != EMBEDDING_DIMENSION:
        raise FeatureSchemaError(
            f"bundle {bundle_dir} has a {manifest.encoder.dimension}-column encoder, the "
            f"embedding features of this code take {EMBEDDING_DIMENSION}; retrain the bundle "
            "with this code"
        )
    expected = list(FEATURE_NAMES)
    if manifest.feature_names == expected:
        return
    for position, (found, wanted) in enumerate(zip(manifest.feature_names, expected,
                                                   strict=False)):
        if found != wanted:
            raise FeatureSchemaError(
                f"bundle {bundle_dir}: feature {position} is {found!r} in the manifest but "
                f"{wanted!r} in this code; retrain the bundle with this code"
            )
    raise FeatureSchemaError(
        f"bundle {bundle_dir} has {len(manifest.feature_names)} features, this code computes "
        f"{len(expected)}; retrain the bundle with this code"
    )


def _verify_file(bundle_dir: Path, name: str, expected: str) -> None:
    path = bundle_dir / name
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise BundleIntegrityError(f"bundle {bundle_dir}: file name {name!r} leaves the bundle")
    if not path.is_file():
        raise BundleIntegrityError(
            f"bundle {bundle_dir}: file {name} is missing; copy the whole bundle folder or "
            "retrain it"
        )
    actual = sha256_file(path)
    if actual != expected:
        raise BundleIntegrityError(
            f"bundle {bundle_dir}: {name} has sha256 {actual[:12]}..., the manifest expects "
            f"{expected[:12]}...; the file was changed or corrupted, restore or retrain the bundle"
        )


def find_latest_bundle(models_dir: str | Path) -> Path:
    """Return the newest bundle folder under `models_dir`, by the manifests' creation time."""
    models_dir = Path(models_dir)
    candidates: list[tuple[datetime, Path]] = []
    for manifest_path in sorted(models_dir.glob(f"*/{MANIFEST_FILE}")):
        if manifest_path.parent.name.startswith("."):
            continue
        try:
            manifest = Manifest.model_validate_json(manifest_path.read_text(encoding="utf-8"))
        except ValidationError:
            logger.warning("skipping %s: not a valid manifest", manifest_path)
            continue
        candidates.append((manifest.created_at, manifest_path.parent))
    if not candidates:
        raise BundleError(f"no model bundle found under {models_dir}; run `make run` or "
                          "`escalation train` first, or pass --bundle")
    return max(candidates)[1]
