"""Scoring functions: compare a model output with a target, giving a float in ``[0, 1]``.

Core layer: imports only the standard library, numpy, :mod:`crucible_train.ports` and
:mod:`crucible_train.errors`.

A scorer is any object with a ``name`` and a ``score(output, target, **opts)`` method
(:class:`Scorer`). Scorers live in a process-wide registry: :func:`register_scorer`,
:func:`get_scorer`, :func:`list_scorers`, and :func:`score` / :func:`score_batch`, which
look a scorer up by name, call it and check that every result is a float in ``[0, 1]``.

Built-in scorers
----------------
* ``exact_match``: ``1.0`` when ``output == target`` exactly (no normalisation at all).
* ``contains``: ``1.0`` when ``target`` is a substring of ``output``. Opt
  ``ignore_case`` (default ``False``) casefolds both first. An empty target is contained
  in every output.
* ``normalized_exact_match``: ``1.0`` when both strings are equal after
  :func:`normalize_text`: Unicode NFKC, ``casefold()``, every Unicode punctuation
  character (categories ``P*``; symbols such as ``$`` or ``+`` are kept) removed, runs of
  whitespace collapsed to one space, leading and trailing whitespace stripped. Because
  punctuation is removed, ``"3.5"`` equals ``"35"``; use ``numeric_match`` for numbers.
* ``regex``: ``1.0`` when opt ``pattern`` (required) matches the output; the target is
  ignored (``needs_target`` is ``False``). Opt ``mode``: ``"search"`` (default, anywhere in
  the output, :func:`re.search`) or ``"fullmatch"`` (the whole output,
  :func:`re.fullmatch`); opt ``ignore_case`` (default ``False``). A missing or invalid
  pattern, or an unknown mode, raises :class:`~crucible_train.errors.ConfigurationError`.
* ``numeric_match``: ``1.0`` when the number extracted from the output is close to the
  number extracted from the target: ``math.isclose(got, want, rel_tol=rel_tol,
  abs_tol=abs_tol)`` with opts ``rel_tol`` (default ``1e-6``) and ``abs_tol`` (default
  ``0.0``). Extraction (:func:`extract_number`) takes the content of the last
  ``\\boxed{...}`` when it contains a number, else the whole text, and reads the LAST
  number in it. Numbers may carry a sign (``-3.5``; a ``-`` right after a letter or digit
  is a hyphen, not a sign, so ``3-5`` reads ``5``), thousands separators (``1,000``, only
  in groups of exactly three digits), a decimal part (``0.5``, ``.5``; a sentence's final
  dot is not part of the number) and an exponent (``1e-3``). A simple fraction of two
  plain numbers (``3/4``, ``-1/2``, LaTeX ``\\frac{3}{4}``) reads as its value; a zero
  denominator makes that match unreadable and the previous number is used. An output
  without a number scores ``0.0``; a target without a number raises
  :class:`~crucible_train.errors.InvalidDataError` (that is a dataset bug, which a silent
  ``0.0`` would hide).
* ``token_f1``: SQuAD-style token F1. Both strings are normalised as in the SQuAD
  evaluation script (lower-case, ASCII punctuation removed, the articles ``a``, ``an``,
  ``the`` removed, split on whitespace); ``F1 = 2 * common / (len(out) + len(target))``
  where ``common`` counts shared tokens with multiplicity. Two empty token lists score
  ``1.0``; exactly one empty scores ``0.0``. Symmetric in its arguments.
* ``semantic_similarity``: cosine similarity of the two texts' embeddings, clamped to
  ``[0, 1]`` (a negative cosine, i.e. dissimilar meaning, scores ``0.0``); see
  :class:`SemanticSimilarityScorer`. The registered instance has no embedding client:
  pass ``embedding=<EmbeddingClient>`` as an opt, or register
  ``SemanticSimilarityScorer(client)`` with ``replace=True``.

Every built-in rejects opts it does not know with
:class:`~crucible_train.errors.ConfigurationError`, so a misspelt option never goes
unnoticed.
"""

from __future__ import annotations

import functools
import math
import re
import string
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from crucible_train.errors import (
    ConfigurationError,
    CrucibleError,
    EmbeddingClientError,
    InvalidDataError,
)
from crucible_train.ports.embedding import EmbeddingClient

__all__ = [
    "BUILTIN_SCORERS",
    "ContainsScorer",
    "ExactMatchScorer",
    "NormalizedExactMatchScorer",
    "NumericMatchScorer",
    "RegexScorer",
    "Scorer",
    "SemanticSimilarityScorer",
    "TokenF1Scorer",
    "extract_number",
    "get_scorer",
    "list_scorers",
    "normalize_text",
    "register_scorer",
    "score",
    "score_batch",
    "unregister_scorer",
]


@runtime_checkable
class Scorer(Protocol):
    """Compares one output with one target.

    Only ``name`` and :meth:`score` are required. Subclass this protocol explicitly to
    inherit the defaults: ``needs_target = True`` and a :meth:`score_batch` that loops
    over :meth:`score`. Scorers should be thread-safe.
    """

    name: str
    needs_target: bool = True

    def score(self, output: str, target: str, **opts: Any) -> float:
        """Score ``output`` against ``target``.

        Returns:
            A float in ``[0, 1]``; ``1.0`` is a perfect answer.

        Raises:
            ConfigurationError: an opt is unknown or invalid.
        """
        ...

    def score_batch(
        self, outputs: Sequence[str], targets: Sequence[str], **opts: Any
    ) -> list[float]:
        """Score ``outputs[i]`` against ``targets[i]`` for every ``i``.

        Scorers with a cheaper batched path (one embedding call) override this.

        Raises:
            ConfigurationError: the sequences differ in length, or an opt is invalid.
        """
        _check_lengths(outputs, targets)
        return [self.score(o, t, **opts) for o, t in zip(outputs, targets, strict=True)]


# --- helpers ---------------------------------------------------------------------------


def _check_lengths(outputs: Sequence[str], targets: Sequence[str]) -> None:
    if len(outputs) != len(targets):
        raise ConfigurationError(
            f"score_batch needs one target per output, got {len(outputs)} outputs and "
            f"{len(targets)} targets"
        )


def _check_opts(scorer: str, opts: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ConfigurationError(
            f"scorer {scorer!r} got unknown option(s) {', '.join(unknown)}; it accepts: {known}"
        )


def _flag(scorer: str, opts: Mapping[str, Any], key: str) -> bool:
    value = opts.get(key, False)
    if not isinstance(value, bool):
        raise ConfigurationError(f"scorer {scorer!r} option {key} must be true or false")
    return value


def _tolerance(scorer: str, opts: Mapping[str, Any], key: str, default: float) -> float:
    value = opts.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(
            f"scorer {scorer!r} option {key} must be a finite number >= 0, got {value!r}"
        )
    return float(value)


def _as_score(value: bool) -> float:
    return 1.0 if value else 0.0


# --- text scorers ---------------------------------------------------------------------


class ExactMatchScorer(Scorer):
    """``1.0`` when the output equals the target exactly, else ``0.0``."""

    name = "exact_match"

    def score(self, output: str, target: str, **opts: Any) -> float:
        """Compare the strings as they are (case, whitespace and punctuation count)."""
        _check_opts(self.name, opts, ())
        return _as_score(output == target)


class ContainsScorer(Scorer):
    """``1.0`` when the target is a substring of the output (opt ``ignore_case``)."""

    name = "contains"

    def score(self, output: str, target: str, **opts: Any) -> float:
        """Check ``target in output``; casefold both when ``ignore_case`` is true."""
        _check_opts(self.name, opts, ("ignore_case",))
        if _flag(self.name, opts, "ignore_case"):
            return _as_score(target.casefold() in output.casefold())
        return _as_score(target in output)


def normalize_text(text: str) -> str:
    """Normalise ``text`` as ``normalized_exact_match`` does.

    NFKC, ``casefold()``, Unicode punctuation (categories ``P*``) removed, whitespace runs
    collapsed to one space and stripped.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch for ch in folded if not unicodedata.category(ch).startswith("P"))
    return " ".join(kept.split())


class NormalizedExactMatchScorer(Scorer):
    """``1.0`` when output and target are equal after :func:`normalize_text`."""

    name = "normalized_exact_match"

    def score(self, output: str, target: str, **opts: Any) -> float:
        """Compare the normalised strings."""
        _check_opts(self.name, opts, ())
        return _as_score(normalize_text(output) == normalize_text(target))


_REGEX_MODES: Final = ("search", "fullmatch")


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # Cached because an evaluation scores thousands of outputs with the same pattern.
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ConfigurationError(f"scorer 'regex' pattern {pattern!r} is invalid: {exc}") from exc


class RegexScorer(Scorer):
    """``1.0`` when opt ``pattern`` matches the output; the target is ignored."""

    name = "regex"
    needs_target = False

    def score(self, output: str, target: str, **opts: Any) -> float:
        """Match ``pattern`` with :func:`re.search` (``mode="search"``) or :func:`re.fullmatch`.

        Raises:
            ConfigurationError: ``pattern`` is missing or invalid, or ``mode`` is unknown.
        """
        _check_opts(self.name, opts, ("pattern", "mode", "ignore_case"))
        pattern = opts.get("pattern")
        if not isinstance(pattern, str):
            raise ConfigurationError("scorer 'regex' needs the option pattern=<regular expression>")
        mode = opts.get("mode", "search")
        if mode not in _REGEX_MODES:
            raise ConfigurationError(
                f"scorer 'regex' option mode must be one of {', '.join(_REGEX_MODES)}, got {mode!r}"
            )
        compiled = _compile(pattern, _flag(self.name, opts, "ignore_case"))
        match = compiled.search(output) if mode == "search" else compiled.fullmatch(output)
        return _as_score(match is not None)


# A plain number never starts inside another one (after a digit or a dot). It has an
# optional sign, allowed only where '-' cannot be a hyphen or a binary minus (not after a
# letter, digit or ')'), thousands groups of exactly three digits or plain digits, an
# optional decimal part and an optional exponent; then an optional "/denominator".
_PLAIN: Final = r"(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?|\.\d+"
_SIGN: Final = r"(?:(?<![\w)])[-+])?"
_NUMBER: Final = re.compile(
    rf"(?<![\d.])(?P<num>{_SIGN}(?:{_PLAIN})(?:[eE][-+]?\d+)?)"
    rf"(?:\s*/\s*(?P<den>[-+]?(?:{_PLAIN})))?"
)
_BOXED: Final = "\\boxed{"
_LATEX_FRACTION: Final = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, braces balanced; None when there is none."""
    start = text.rfind(_BOXED)
    while start != -1:
        depth = 1
        i = start + len(_BOXED)
        begin = i
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[begin:i]
            i += 1
        # Unclosed: try an earlier one, so a truncated trailing box does not hide it.
        start = text.rfind(_BOXED, 0, start)
    return None


def _last_number(text: str) -> float | None:
    text = _LATEX_FRACTION.sub(r"\1/\2", text)
    for match in reversed(list(_NUMBER.finditer(text))):
        value = float(match["num"].replace(",", ""))
        if match["den"] is None:
            return value
        denominator = float(match["den"].replace(",", ""))
        if denominator != 0:
            return value / denominator
    return None


def extract_number(text: str) -> float | None:
    """The number ``numeric_match`` reads from ``text``, or None when there is none.

    Prefers the content of the last ``\\boxed{...}`` when it holds a number; otherwise
    the last number in the whole text. See the module docstring for the number syntax.
    """
    boxed = _last_boxed(text)
    if boxed is not None:
        value = _last_number(boxed)
        if value is not None:
            return value
    return _last_number(text)


class NumericMatchScorer(Scorer):
    """``1.0`` when the output's last number is close to the target's number."""

    name = "numeric_match"

    def score(self, output: str, target: str, **opts: Any) -> float:
        """Compare with ``math.isclose`` (opts ``rel_tol`` = 1e-6, ``abs_tol`` = 0.0).

        Raises:
            InvalidDataError: the target holds no number.
        """
        _check_opts(self.name, opts, ("rel_tol", "abs_tol"))
        rel_tol = _tolerance(self.name, opts, "rel_tol", 1e-6)
        abs_tol = _tolerance(self.name, opts, "abs_tol", 0.0)
        want = extract_number(target)
        if want is None:
            raise InvalidDataError(f"numeric_match target {target[:80]!r} holds no number")
        got = extract_number(output)
        if got is None:
            return 0.0
        return _as_score(math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol))


_ARTICLES: Final = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION: Final = str.maketrans("", "", string.punctuation)


def _squad_tokens(text: str) -> list[str]:
    # The SQuAD v1.1 evaluation script's normalize_answer, token by token.
    return _ARTICLES.sub(" ", text.lower().translate(_ASCII_PUNCTUATION)).split()


class TokenF1Scorer(Scorer):
    """SQuAD-style token F1 between output and target; symmetric."""

    name = "token_f1"

    def score(self, output: str, target: str, **opts: Any) -> float:
        """``2 * common / (len(output tokens) + len(target tokens))``."""
        _check_opts(self.name, opts, ())
        out_tokens = _squad_tokens(output)
        target_tokens = _squad_tokens(target)
        if not out_tokens or not target_tokens:
            return _as_score(out_tokens == target_tokens)
        common = sum((Counter(out_tokens) & Counter(target_tokens)).values())
        # Equal to 2PR/(P+R), written so swapping the arguments gives the same float.
        return 2.0 * common / (len(out_tokens) + len(target_tokens))


# --- semantic similarity ----------------------------------------------------------------


class SemanticSimilarityScorer(Scorer):
    """Cosine similarity of embeddings, clamped to ``[0, 1]``.

    Rules:

    * output and target are embedded in ONE ``embed_texts`` call; :meth:`score_batch`
      embeds every distinct non-blank text of the batch in ONE call (identical texts are
      embedded once; the port guarantees embeddings are idempotent);
    * the score is ``min(1, max(0, cosine))``: negative cosine (opposite meaning) is 0;
    * blank texts (empty or whitespace only) are not embedded: two blanks score ``1.0``,
      one blank scores ``0.0``;
    * a zero embedding vector scores ``0.0`` (its direction is undefined);
    * a failing client raises :class:`~crucible_train.errors.EmbeddingClientError` (other
      crucible errors, such as the noop client's ``BackendNotConfiguredError``, pass
      through); a result of the wrong shape or with non-finite values is a failure too.
      Never a silent ``0.0``.

    Args:
        embedding: the embedding client; may be None when every call passes the opt
            ``embedding=``.
    """

    name = "semantic_similarity"
    _OPTS: ClassVar[tuple[str, ...]] = ("embedding",)

    def __init__(self, embedding: EmbeddingClient | None = None) -> None:
        self._embedding = embedding

    def _client(self, opts: Mapping[str, Any]) -> EmbeddingClient:
        _check_opts(self.name, opts, self._OPTS)
        client = opts.get("embedding", self._embedding)
        if client is None:
            raise ConfigurationError(
                "scorer 'semantic_similarity' needs an embedding client: pass "
                "embedding=<EmbeddingClient>, or register SemanticSimilarityScorer(client) "
                "with replace=True"
            )
        if not isinstance(client, EmbeddingClient):
            raise ConfigurationError(
                "scorer 'semantic_similarity' option embedding must be an EmbeddingClient, "
                f"got {type(client).__name__}"
            )
        return client

    def score(self, output: str, target: str, **opts: Any) -> float:
        """Score one pair with one embedding call.

        Raises:
            EmbeddingClientError: the embedding call failed or returned a bad array.
            ConfigurationError: no embedding client is available.
        """
        return self.score_batch([output], [target], **opts)[0]

    def score_batch(
        self, outputs: Sequence[str], targets: Sequence[str], **opts: Any
    ) -> list[float]:
        """Score every pair with one embedding call for all distinct non-blank texts.

        Raises:
            ConfigurationError: the sequences differ in length, or no client is available.
            EmbeddingClientError: the embedding call failed or returned a bad array.
        """
        client = self._client(opts)
        _check_lengths(outputs, targets)
        row: dict[str, int] = {}
        for output, target in zip(outputs, targets, strict=True):
            if output.strip() and target.strip():
                row.setdefault(output, len(row))
                row.setdefault(target, len(row))
        vectors = _embed(client, list(row)) if row else None
        scores: list[float] = []
        for output, target in zip(outputs, targets, strict=True):
            if vectors is None or not (output.strip() and target.strip()):
                scores.append(_as_score(not output.strip() and not target.strip()))
            else:
                scores.append(_clamped_cosine(vectors[row[output]], vectors[row[target]]))
        return scores


def _embed(client: EmbeddingClient, texts: list[str]) -> npt.NDArray[np.float64]:
    try:
        raw = client.embed_texts(texts)
    except CrucibleError:
        raise
    except Exception as exc:
        raise EmbeddingClientError(
            f"embedding {len(texts)} texts failed: {type(exc).__name__}: {exc}"
        ) from exc
    array = np.asarray(raw, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != len(texts):
        raise EmbeddingClientError(
            f"embedding client returned shape {array.shape} for {len(texts)} texts; "
            f"expected ({len(texts)}, dimension)"
        )
    if not np.isfinite(array).all():
        raise EmbeddingClientError("embedding client returned non-finite values")
    return array


def _clamped_cosine(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    norm = float(np.linalg.norm(a)) * float(np.linalg.norm(b))
    if norm == 0.0 or not math.isfinite(norm):
        return 0.0
    cosine = float(np.dot(a, b)) / norm
    if not math.isfinite(cosine):
        return 0.0
    return min(1.0, max(0.0, cosine))


# --- registry ---------------------------------------------------------------------------

BUILTIN_SCORERS: Final[tuple[str, ...]] = (
    "exact_match",
    "contains",
    "normalized_exact_match",
    "regex",
    "numeric_match",
    "token_f1",
    "semantic_similarity",
)
"""Names of the scorers registered when this module is imported."""

_lock = threading.Lock()
_registry: dict[str, Scorer] = {}


def register_scorer(scorer: Scorer, *, replace: bool = False) -> None:
    """Register ``scorer`` under ``scorer.name``.

    Args:
        scorer: any object with a non-empty string ``name`` and a callable ``score``.
        replace: allow replacing a scorer already registered under that name.

    Raises:
        ConfigurationError: the object is not a scorer, or the name is taken and
            ``replace`` is false.
    """
    name = getattr(scorer, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigurationError("a scorer needs a non-empty string attribute 'name'")
    if not callable(getattr(scorer, "score", None)):
        raise ConfigurationError(f"scorer {name!r} has no callable score(output, target)")
    with _lock:
        if name in _registry and not replace:
            raise ConfigurationError(
                f"a scorer named {name!r} is already registered; pass replace=True to replace it"
            )
        _registry[name] = scorer


def unregister_scorer(name: str) -> None:
    """Remove the scorer registered under ``name``; unknown names are ignored."""
    with _lock:
        _registry.pop(name, None)


def get_scorer(name: str) -> Scorer:
    """The scorer registered under ``name``.

    Raises:
        ConfigurationError: no scorer has that name; the message lists the registered ones.
    """
    with _lock:
        found = _registry.get(name)
        if found is not None:
            return found
        known = ", ".join(sorted(_registry))
    raise ConfigurationError(f"unknown scoring method {name!r}; registered scorers: {known}")


def list_scorers() -> list[str]:
    """Names of the registered scorers, sorted."""
    with _lock:
        return sorted(_registry)


def _resolve(method: str | Scorer) -> Scorer:
    return get_scorer(method) if isinstance(method, str) else method


def _checked(scorer: Scorer, value: object) -> float:
    # A user scorer that returns 1.3 or NaN would silently skew every average.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"scorer {scorer.name!r} returned {type(value).__name__}, expected a float"
        )
    result = float(value)
    if not 0.0 <= result <= 1.0:
        raise ConfigurationError(f"scorer {scorer.name!r} returned {result!r}, outside [0, 1]")
    return result


def _check_text(kind: str, value: object) -> None:
    if not isinstance(value, str):
        raise InvalidDataError(f"{kind} must be a string, got {type(value).__name__}")


def score(method: str | Scorer, output: str, target: str, **opts: Any) -> float:
    """Score ``output`` against ``target`` with the scorer named ``method``.

    Args:
        method: a registered scorer name, or a scorer object.
        output: the model output.
        target: the expected answer (ignored by scorers whose ``needs_target`` is false).
        **opts: scorer options (``pattern=``, ``abs_tol=``, ``embedding=`` ...).

    Returns:
        A float in ``[0, 1]``.

    Raises:
        ConfigurationError: unknown method or option, or the scorer broke its contract.
        InvalidDataError: output or target is not a string.
    """
    scorer = _resolve(method)
    _check_text("output", output)
    _check_text("target", target)
    return _checked(scorer, scorer.score(output, target, **opts))


def score_batch(
    method: str | Scorer, outputs: Sequence[str], targets: Sequence[str], **opts: Any
) -> list[float]:
    """Score ``outputs[i]`` against ``targets[i]`` with one batched scorer call.

    Uses the scorer's ``score_batch`` when it has one, else loops over ``score``.

    Raises:
        ConfigurationError: unknown method, lengths differ, or the scorer broke its
            contract (wrong number of results, a value outside ``[0, 1]``).
        InvalidDataError: an output or target is not a string.
    """
    scorer = _resolve(method)
    _check_lengths(outputs, targets)
    for output, target in zip(outputs, targets, strict=True):
        _check_text("output", output)
        _check_text("target", target)
    batch: Callable[..., Sequence[float]] | None = getattr(scorer, "score_batch", None)
    if callable(batch):
        results = list(batch(outputs, targets, **opts))
    else:
        results = [scorer.score(o, t, **opts) for o, t in zip(outputs, targets, strict=True)]
    if len(results) != len(outputs):
        raise ConfigurationError(
            f"scorer {scorer.name!r} returned {len(results)} scores for {len(outputs)} pairs"
        )
    return [_checked(scorer, value) for value in results]


for _builtin in (
    ExactMatchScorer(),
    ContainsScorer(),
    NormalizedExactMatchScorer(),
    RegexScorer(),
    NumericMatchScorer(),
    TokenF1Scorer(),
    SemanticSimilarityScorer(),
):
    register_scorer(_builtin)
del _builtin
