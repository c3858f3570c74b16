"""FakeEmbeddingClient: a bag of characters, a fixed table, or a scripted (bad) result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from crucible_train.errors import EmbeddingClientError
from crucible_train.ports.embedding import EmbeddingClient


class FakeEmbeddingClient(EmbeddingClient):
    """Embeds texts deterministically; records each call's texts in :attr:`calls`.

    By default a text's row counts its characters into ``dimension - 1`` slots
    (``ord(c) % (dimension - 1)``) and ends in a constant 1, so no row is zero.

    Args:
        dimension: the width of the default embedding.
        table: fixed vectors per text instead (a text not in it is an
            ``EmbeddingClientError``); its width is the dimension.
        result: what every call returns instead, unchecked, to play a broken backend.
        fail_with: every call raises this.
    """

    def __init__(
        self,
        dimension: int = 16,
        *,
        table: Mapping[str, Sequence[float]] | None = None,
        result: Any = None,
        fail_with: Exception | None = None,
    ) -> None:
        self.table = None if table is None else {k: list(v) for k, v in table.items()}
        self._dimension = len(next(iter(self.table.values()))) if self.table else dimension
        self.result = result
        self.fail_with = fail_with
        self.calls: list[list[str]] = []

    @property
    def dimension(self) -> int:
        """Width of every row."""
        return self._dimension

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One float32 row per text (see the class)."""
        self.calls.append(list(texts))
        if self.fail_with is not None:
            raise self.fail_with
        if self.result is not None:
            return self.result  # type: ignore[no-any-return]
        if self.table is not None:
            unknown = [text for text in texts if text not in self.table]
            if unknown:
                raise EmbeddingClientError(f"the fake's table has no vector for {unknown[0]!r}")
            return np.array([self.table[t] for t in texts], dtype=np.float32).reshape(
                len(texts), self._dimension
            )
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        slots = self._dimension - 1
        for row, text in enumerate(texts):
            for char in text:
                out[row, ord(char) % slots] += 1.0
            out[row, slots] = 1.0
        return out
