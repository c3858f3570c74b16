"""Tests for crucible_train.core.scoring: built-in rules, registry, semantic similarity."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_train.core import scoring
from crucible_train.core.scoring import (
    BUILTIN_SCORERS,
    Scorer,
    SemanticSimilarityScorer,
    extract_number,
    get_scorer,
    list_scorers,
    normalize_text,
    register_scorer,
    score,
    score_batch,
    unregister_scorer,
)
from crucible_train.errors import (
    BackendNotConfiguredError,
    ConfigurationError,
    EmbeddingClientError,
    InvalidDataError,
)

from fakes import FakeEmbeddingClient


@pytest.fixture
def clean_registry() -> Iterator[None]:
    before = {name: get_scorer(name) for name in list_scorers()}
    yield
    for name in list_scorers():
        unregister_scorer(name)
    for scorer in before.values():
        register_scorer(scorer)


# --- built-in rules ------------------------------------------------------------------


def test_builtins_are_registered():
    assert set(BUILTIN_SCORERS) <= set(list_scorers())
    assert list_scorers() == sorted(list_scorers())


@pytest.mark.parametrize(
    ("output", "target", "expected"),
    [("Paris", "Paris", 1.0), ("Paris", "paris", 0.0), ("Paris ", "Paris", 0.0), ("", "", 1.0)],
)
def test_exact_match(output, target, expected):
    assert score("exact_match", output, target) == expected


def test_contains_and_ignore_case():
    assert score("contains", "The capital is Paris.", "Paris") == 1.0
    assert score("contains", "The capital is paris.", "Paris") == 0.0
    assert score("contains", "The capital is PARIS.", "paris", ignore_case=True) == 1.0
    assert score("contains", "anything", "") == 1.0


@pytest.mark.parametrize(
    ("output", "target", "expected"),
    [
        ("  Hello,   WORLD! ", "hello world", 1.0),
        ("Straße", "STRASSE", 1.0),
        ("\uff46\uff55\uff4c\uff4c", "full", 1.0),  # fullwidth letters
        ("it's", "its", 1.0),
        ("$5", "5", 0.0),
        ("hello world", "helloworld", 0.0),
    ],
)
def test_normalized_exact_match(output, target, expected):
    assert score("normalized_exact_match", output, target) == expected


def test_normalize_text_rules():
    assert normalize_text("  A\t«quoted»\n  text. ") == "a quoted text"


def test_regex_search_fullmatch_and_errors():
    assert score("regex", "answer: 42", "", pattern=r"\d+") == 1.0
    assert score("regex", "answer: 42", "", pattern=r"\d+", mode="fullmatch") == 0.0
    assert score("regex", "42", "ignored", pattern=r"\d+", mode="fullmatch") == 1.0
    assert score("regex", "YES", "", pattern="yes", ignore_case=True) == 1.0
    assert get_scorer("regex").needs_target is False
    with pytest.raises(ConfigurationError, match="invalid"):
        score("regex", "x", "", pattern="(")
    with pytest.raises(ConfigurationError, match="pattern"):
        score("regex", "x", "")
    with pytest.raises(ConfigurationError, match="mode"):
        score("regex", "x", "", pattern="x", mode="match")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", 42.0),
        ("1,000 apples", 1000.0),
        ("1,000,000.25", 1_000_000.25),
        ("it fell to -3.5 degrees", -3.5),
        ("x = 1e-3", 0.001),
        ("2.5E3", 2500.0),
        (r"so \boxed{42}, then 7 steps", 42.0),
        (r"\boxed{\frac{1}{2}}", 0.5),
        (r"\boxed{x} and 7", 7.0),
        ("pages 3-5", 5.0),
        ("3/4", 0.75),
        ("-1/2", -0.5),
        ("1/0", None),
        ("first 2 then 9", 9.0),
        ("$1,234", 1234.0),
        ("no number here", None),
        ("", None),
    ],
)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def test_numeric_match_tolerances():
    assert score("numeric_match", "so it is 1,000", "1000") == 1.0
    assert score("numeric_match", "0.3333333", "1/3", rel_tol=1e-6) == 1.0
    assert score("numeric_match", "0.33", "1/3") == 0.0
    assert score("numeric_match", "0.33", "1/3", rel_tol=0.02) == 1.0
    assert score("numeric_match", "0.0001", "0", abs_tol=1e-3) == 1.0
    assert score("numeric_match", "0.0001", "0") == 0.0
    assert score("numeric_match", "no idea", "5") == 0.0


def test_numeric_match_target_without_number_is_invalid_data():
    with pytest.raises(InvalidDataError, match="no number"):
        score("numeric_match", "5", "five")


@pytest.mark.parametrize("opts", [{"rel_tol": -1}, {"abs_tol": float("nan")}, {"rel_tol": True}])
def test_numeric_match_bad_tolerances(opts):
    with pytest.raises(ConfigurationError):
        score("numeric_match", "1", "1", **opts)


@pytest.mark.parametrize(
    ("output", "target", "expected"),
    [
        ("The Eiffel Tower", "eiffel tower!", 1.0),
        ("a cat sat", "the dog sat", 0.5),
        ("the", "a", 1.0),
        ("the", "cat", 0.0),
        ("cat cat", "cat", 2 * 1 / 3),
    ],
)
def test_token_f1(output, target, expected):
    assert score("token_f1", output, target) == pytest.approx(expected)


def test_unknown_option_is_rejected():
    with pytest.raises(ConfigurationError, match="abs_tolerance"):
        score("numeric_match", "1", "1", abs_tolerance=0.1)


def test_non_string_input_is_invalid_data():
    with pytest.raises(InvalidDataError):
        score("exact_match", 1, "1")  # type: ignore[arg-type]


# --- registry ---------------------------------------------------------------------------


def test_unknown_method_lists_registered_scorers():
    with pytest.raises(ConfigurationError, match="unknown scoring method 'bleu'") as info:
        score("bleu", "a", "b")
    for name in BUILTIN_SCORERS:
        assert name in str(info.value)


class LengthRatio(Scorer):
    name = "length_ratio"

    def score(self, output: str, target: str, **opts: Any) -> float:
        longest = max(len(output), len(target))
        return 1.0 if longest == 0 else min(len(output), len(target)) / longest


def test_user_scorer_registration_and_defaults(clean_registry):
    register_scorer(LengthRatio())
    assert "length_ratio" in list_scorers()
    assert score("length_ratio", "ab", "abcd") == 0.5
    assert score_batch("length_ratio", ["ab", ""], ["abcd", ""]) == [0.5, 1.0]
    assert get_scorer("length_ratio").needs_target is True
    with pytest.raises(ConfigurationError, match="already registered"):
        register_scorer(LengthRatio())
    register_scorer(LengthRatio(), replace=True)


def test_structural_scorer_without_score_batch(clean_registry):
    class Plain:
        name = "plain"

        def score(self, output: str, target: str, **opts: Any) -> float:
            return 1.0

    register_scorer(Plain())  # type: ignore[arg-type]
    assert score_batch("plain", ["a", "b"], ["c", "d"]) == [1.0, 1.0]


def test_scorer_out_of_range_is_caught(clean_registry):
    class Bad(Scorer):
        name = "bad"

        def score(self, output: str, target: str, **opts: Any) -> float:
            return 1.5

    register_scorer(Bad())
    with pytest.raises(ConfigurationError, match="outside"):
        score("bad", "a", "b")


@pytest.mark.parametrize("obj", [object(), type("Nameless", (), {"name": ""})()])
def test_register_rejects_non_scorers(obj):
    with pytest.raises(ConfigurationError):
        register_scorer(obj)


def test_score_batch_length_mismatch():
    with pytest.raises(ConfigurationError, match="one target per output"):
        score_batch("exact_match", ["a"], ["a", "b"])


def test_score_accepts_a_scorer_object():
    assert score(LengthRatio(), "a", "ab") == 0.5


# --- semantic similarity ----------------------------------------------------------------


def test_semantic_one_call_per_pair_and_per_batch():
    client = FakeEmbeddingClient()
    scorer = SemanticSimilarityScorer(client)
    assert scorer.score("abc", "abc") == pytest.approx(1.0)
    assert len(client.calls) == 1
    assert client.calls[0] == ["abc"]  # identical texts are embedded once
    client.calls.clear()
    outputs = [f"output {i}" for i in range(25)]
    targets = [f"target {i}" for i in range(25)]
    scores = scorer.score_batch(outputs, targets)
    assert len(client.calls) == 1
    assert len(client.calls[0]) == 50
    assert scores == [scorer.score(o, t) for o, t in zip(outputs, targets, strict=True)]


def test_semantic_cosine_clamped():
    client = FakeEmbeddingClient(
        table={"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [-1.0, 0.0], "d": [1, 1]}
    )
    scorer = SemanticSimilarityScorer(client)
    assert scorer.score("a", "b") == 0.0
    assert scorer.score("a", "c") == 0.0  # negative cosine clamps to 0
    assert scorer.score("a", "d") == pytest.approx(2**-0.5)
    assert scorer.score("a", "a") == pytest.approx(1.0)


def test_semantic_zero_vector_and_blank_texts():
    client = FakeEmbeddingClient(table={"zero": [0.0, 0.0], "a": [1.0, 0.0]})
    scorer = SemanticSimilarityScorer(client)
    assert scorer.score("zero", "a") == 0.0
    assert scorer.score("zero", "zero") == 0.0
    counting = FakeEmbeddingClient()
    blank = SemanticSimilarityScorer(counting)
    assert blank.score("", "  ") == 1.0
    assert blank.score("", "text") == 0.0
    assert blank.score_batch(["", "x"], ["y", " "]) == [0.0, 0.0]
    assert counting.calls == []  # blanks are never embedded


def test_semantic_length_mismatch():
    with pytest.raises(ConfigurationError):
        SemanticSimilarityScorer(FakeEmbeddingClient()).score_batch(["a"], [])


@pytest.mark.parametrize(
    "client",
    [
        FakeEmbeddingClient(2, fail_with=RuntimeError("model exploded")),
        FakeEmbeddingClient(2, fail_with=EmbeddingClientError("typed failure")),
        FakeEmbeddingClient(2, result=np.zeros((1, 2), dtype=np.float32)),
        FakeEmbeddingClient(2, result=np.zeros(4, dtype=np.float32)),
        FakeEmbeddingClient(2, result=np.full((2, 2), np.nan, dtype=np.float32)),
    ],
)
def test_semantic_failures_raise_never_zero(client):
    with pytest.raises(EmbeddingClientError):
        SemanticSimilarityScorer(client).score("a", "b")


def test_semantic_noop_client_error_passes_through():
    from crucible_train.adapters.noop import NoopEmbeddingClient

    with pytest.raises(BackendNotConfiguredError):
        score("semantic_similarity", "a", "b", embedding=NoopEmbeddingClient())


def test_registered_semantic_needs_a_client():
    with pytest.raises(ConfigurationError, match="embedding client"):
        score("semantic_similarity", "a", "b")
    with pytest.raises(ConfigurationError, match="EmbeddingClient"):
        score("semantic_similarity", "a", "b", embedding="not a client")
    assert score(
        "semantic_similarity", "abc", "abc", embedding=FakeEmbeddingClient()
    ) == pytest.approx(1.0)


# --- properties -----------------------------------------------------------------------

_OPTS: dict[str, dict[str, Any]] = {"regex": {"pattern": r"\w+"}}


@given(output=st.text(), target=st.text())
def test_every_builtin_returns_a_float_in_unit_interval(output, target):
    client = FakeEmbeddingClient()
    for name in BUILTIN_SCORERS:
        opts = dict(_OPTS.get(name, {}))
        if name == "semantic_similarity":
            opts["embedding"] = client
        # numeric_match refuses targets without a number (InvalidDataError, tested above).
        numeric_without_number = name == "numeric_match" and extract_number(target) is None
        target_used = "0" if numeric_without_number else target
        value = score(name, output, target_used, **opts)
        assert isinstance(value, float)
        assert 0.0 <= value <= 1.0


@given(text=st.text())
def test_exact_match_of_a_text_with_itself(text):
    assert score("exact_match", text, text) == 1.0
    assert score("normalized_exact_match", text, text) == 1.0
    assert score("token_f1", text, text) == 1.0


@given(a=st.text(), b=st.text())
def test_token_f1_is_symmetric(a, b):
    assert score("token_f1", a, b) == score("token_f1", b, a)


@given(value=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_numeric_match_reads_back_formatted_numbers(value):
    assert score("numeric_match", f"The answer is {value!r}.", repr(value)) == 1.0
    assert score("numeric_match", f"\\boxed{{{value!r}}} or maybe 3", repr(value)) == 1.0


def test_module_has_no_heavy_imports():
    assert "torch" not in vars(scoring)
