"""Tests of the numpy token encoder: parity with scikit-learn, file round trip, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from pipelines.train.tokens import TokenEncoderSettings, fit_token_encoder
from serving.errors import BundleError
from serving.token_encoder import SETTINGS_FILE, TokenEncoder, load_token_encoder

TRAIN_TEXTS = [
    "w4 w2137 w4",
    "w21 w16 w3 w15 w2 w150 w18",
    "w16 w20",
    "w69 w21 w320 w58 w175 w863 w167 w1262",
    "w69 w21 w320 w58 w175 w863 w167 w1262",
    "w1 w1 w1",
    "I was charged twice, I need a refund",
    "Ich möchte mit einem Menschen sprechen!",
    "我 要 退款",
    "",
]
UNSEEN_TEXTS = ["w21 w16 w999 w20", "REFUND refund refund", "", "   ", "w4", "退款 我"]


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(TokenEncoderSettings(ngram_range=(1, 2), min_df=1), id="word-1-2"),
        pytest.param(TokenEncoderSettings(ngram_range=(1, 1), min_df=2, sublinear_tf=False),
                     id="word-min-df-2"),
        pytest.param(TokenEncoderSettings(analyzer="char_wb", ngram_range=(2, 4), min_df=1),
                     id="char-wb-2-4"),
        pytest.param(TokenEncoderSettings(ngram_range=(1, 3), min_df=1, lowercase=False,
                                          token_pattern=r"\S+"), id="whitespace-tokens"),
    ],
)
def test_transform_matches_sklearn(settings: TokenEncoderSettings) -> None:
    encoder, vectorizer = fit_token_encoder(TRAIN_TEXTS, settings)
    texts = TRAIN_TEXTS + UNSEEN_TEXTS

    expected = vectorizer.transform(texts).toarray()
    actual = encoder.transform(texts)

    assert actual.shape == expected.shape
    assert actual.dtype == np.float32
    assert np.max(np.abs(actual - expected)) < 1e-6


def test_sparse_rows_equal_dense() -> None:
    encoder, _ = fit_token_encoder(TRAIN_TEXTS, TokenEncoderSettings(min_df=1))
    sparse_rows = encoder.transform_sparse(UNSEEN_TEXTS)

    assert sparse_rows.n_rows == len(UNSEEN_TEXTS)
    assert np.array_equal(sparse_rows.toarray(), encoder.transform(UNSEEN_TEXTS))
    for index in range(sparse_rows.n_rows):
        columns, _ = sparse_rows.row(index)
        assert np.all(np.diff(columns) > 0)


def test_rows_are_unit_length_or_zero() -> None:
    encoder, _ = fit_token_encoder(TRAIN_TEXTS, TokenEncoderSettings(min_df=1))
    norms = np.linalg.norm(encoder.transform(TRAIN_TEXTS + UNSEEN_TEXTS), axis=1)

    assert np.all((np.abs(norms - 1.0) < 1e-5) | (norms == 0.0))
    assert norms[TRAIN_TEXTS.index("")] == 0.0


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    encoder, _ = fit_token_encoder(TRAIN_TEXTS, TokenEncoderSettings(min_df=1))
    names = encoder.save(tmp_path)
    loaded = load_token_encoder(tmp_path)

    assert SETTINGS_FILE in names
    assert loaded.vocabulary == encoder.vocabulary
    assert np.array_equal(loaded.transform(UNSEEN_TEXTS), encoder.transform(UNSEEN_TEXTS))


def test_projection_round_trip_and_unit_rows(tmp_path: Path) -> None:
    settings = TokenEncoderSettings(min_df=1, projection_dimension=3)
    encoder, vectorizer = fit_token_encoder(TRAIN_TEXTS, settings)
    encoder.save(tmp_path)
    loaded = load_token_encoder(tmp_path)

    tfidf = vectorizer.transform(UNSEEN_TEXTS).toarray()
    expected = tfidf @ encoder.projection
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    expected = np.divide(expected, norms, out=np.zeros_like(expected), where=norms > 0)

    assert loaded.dimension == 3
    assert np.max(np.abs(loaded.transform(UNSEEN_TEXTS) - expected)) < 1e-6


def test_load_rejects_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        load_token_encoder(tmp_path / "absent")


def test_load_rejects_wrong_format(tmp_path: Path) -> None:
    encoder, _ = fit_token_encoder(TRAIN_TEXTS, TokenEncoderSettings(min_df=1))
    encoder.save(tmp_path)
    settings = json.loads((tmp_path / SETTINGS_FILE).read_text(encoding="utf-8"))
    settings["format"] = "99"
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")

    with pytest.raises(BundleError, match="format '99'"):
        load_token_encoder(tmp_path)


def test_load_rejects_array_outside_folder(tmp_path: Path) -> None:
    encoder, _ = fit_token_encoder(TRAIN_TEXTS, TokenEncoderSettings(min_df=1))
    encoder.save(tmp_path)
    settings = json.loads((tmp_path / SETTINGS_FILE).read_text(encoding="utf-8"))
    settings["idf"] = "../idf.npy"
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")

    with pytest.raises(BundleError, match="plain file name"):
        load_token_encoder(tmp_path)


def test_load_rejects_pickled_array(tmp_path: Path) -> None:
    encoder, _ = fit_token_encoder(TRAIN_TEXTS, TokenEncoderSettings(min_df=1))
    encoder.save(tmp_path)
    np.save(tmp_path / "token_encoder_idf.npy", np.array([{"a": 1}], dtype=object),
            allow_pickle=True)

    with pytest.raises(BundleError, match="could not be read"):
        load_token_encoder(tmp_path)


def test_encoder_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="analyzer 'char'"):
        TokenEncoder(["a"], np.ones(1), analyzer="char")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ngram_range"):
        TokenEncoder(["a"], np.ones(1), ngram_range=(2, 1))
    with pytest.raises(ValueError, match="same length"):
        TokenEncoder(["a", "b"], np.ones(1))


def test_transform_rejects_single_string() -> None:
    encoder, _ = fit_token_encoder(TRAIN_TEXTS, TokenEncoderSettings(min_df=1))

    with pytest.raises(TypeError, match="one str"):
        encoder.transform("w4 w2137")


def test_fit_rejects_empty_vocabulary() -> None:
    with pytest.raises(ValueError, match="lower min_df"):
        fit_token_encoder(["", "  "], TokenEncoderSettings(min_df=1))


def test_vectorizer_defaults_match_encoder_defaults() -> None:
    # The encoder's default token pattern must be scikit-learn's, or parity breaks silently.
    assert TokenEncoder(["ab"], np.ones(1)).token_pattern == TfidfVectorizer().token_pattern


def _saved(tmp_path: Path, projection_dimension: int = 0) -> dict[str, object]:
    settings = TokenEncoderSettings(min_df=1, projection_dimension=projection_dimension)
    encoder, _ = fit_token_encoder(TRAIN_TEXTS, settings)
    encoder.save(tmp_path)
    return json.loads((tmp_path / SETTINGS_FILE).read_text(encoding="utf-8"))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("lowercase", "false", "lowercase is 'false', of type str"),
    ("sublinear_tf", 0, "sublinear_tf is 0, of type int"),
    ("ngram_range", [1.5, 2.7], "ngram_range"),
    ("ngram_range", [1, 2, 3], "ngram_range"),
    ("ngram_range", "12", "ngram_range is '12'"),
    ("norm", "l1", "norm is 'l1'"),
    ("token_pattern", "(\\w)(\\w+)", "more than one capturing group"),
    ("vocabulary", [1, 2], "not a string"),
    ("vocabulary", None, "vocabulary is None"),
])
def test_load_rejects_malformed_settings(tmp_path: Path, key: str, value: object,
                                         message: str) -> None:
    settings = _saved(tmp_path)
    settings[key] = value
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")

    with pytest.raises(BundleError, match=message):
        load_token_encoder(tmp_path)


def test_load_names_a_missing_key(tmp_path: Path) -> None:
    settings = _saved(tmp_path)
    del settings["vocabulary"]
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")

    with pytest.raises(BundleError, match="missing the key 'vocabulary'"):
        load_token_encoder(tmp_path)


@pytest.mark.parametrize(("file", "value", "message"), [
    ("token_encoder_idf.npy", np.nan, "idf contains NaN"),
    ("token_encoder_idf.npy", -1.0, "zero or negative"),
    ("token_encoder_projection.npy", np.inf, "projection contains NaN or infinite"),
])
def test_load_rejects_non_finite_weights(tmp_path: Path, file: str, value: float,
                                         message: str) -> None:
    _saved(tmp_path, projection_dimension=3)
    weights = np.load(tmp_path / file, allow_pickle=False)
    weights.reshape(-1)[0] = value
    np.save(tmp_path / file, weights, allow_pickle=False)

    with pytest.raises(BundleError, match=message):
        load_token_encoder(tmp_path)


def test_load_rejects_complex_projection(tmp_path: Path) -> None:
    _saved(tmp_path, projection_dimension=3)
    path = tmp_path / "token_encoder_projection.npy"
    np.save(path, np.load(path, allow_pickle=False).astype(np.complex128), allow_pickle=False)

    with pytest.raises(BundleError, match="dtype complex128"):
        load_token_encoder(tmp_path)


def test_load_rejects_arrays_the_manifest_did_not_hash(tmp_path: Path) -> None:
    settings = _saved(tmp_path, projection_dimension=3)
    (tmp_path / "extra.npy").write_bytes((tmp_path / "token_encoder_projection.npy").read_bytes())
    settings["projection"] = "extra.npy"
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")

    with pytest.raises(BundleError, match="extra.npy.*manifest hashed"):
        load_token_encoder(tmp_path, expected_arrays=["token_encoder_idf.npy",
                                                      "token_encoder_projection.npy"])


def test_fit_explains_a_too_small_vocabulary() -> None:
    with pytest.raises(ValueError, match="vocabulary has .* terms .*raise max_features"):
        fit_token_encoder(TRAIN_TEXTS, TokenEncoderSettings(min_df=1, projection_dimension=50))


def test_fit_hint_fits_the_error() -> None:
    with pytest.raises(ValueError, match="check the token_pattern") as caught:
        fit_token_encoder(TRAIN_TEXTS, TokenEncoderSettings(min_df=1, token_pattern="(a)(b)"))

    assert "min_df" not in str(caught.value)
