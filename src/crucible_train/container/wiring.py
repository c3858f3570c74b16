"""The wiring diagram: every backend of every port, and the settings block each one reads.

Container layer, and the ONLY module that imports adapters. :class:`AppContainer` is a
declarative container: each port is one typed ``Selector`` on ``config.<port>.backend``
whose branches are the backends, one named provider per backend reading its own
``config.<port>.<backend>`` block (see :func:`~crucible_train.container.backends.backend`).
Metrics sinks are named providers too, built in the order ``metrics.sinks`` lists them.
What an adapter receives besides its settings (the ``http`` client, ``run_dir``) is
written here, on its line.

Adding a backend is one line here plus its settings class beside the adapter; validation,
``logs sync``, ``config show`` and the configuration reference read the list of backends
from this diagram (:data:`BACKENDS`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeVar

from dependency_injector import containers, providers

from crucible_train.adapters.byte_level.settings import ByteLevelTokenizerSettings
from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.console.metrics_sink import ConsoleMetricsSink
from crucible_train.adapters.console.settings import ConsoleMetricsSinkSettings
from crucible_train.adapters.delivery.spool import find_spools
from crucible_train.adapters.delivery.sync import SpoolResult, sync_run_dir
from crucible_train.adapters.files.blob_store import FilesBlobStore
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.adapters.files.metrics_sink import FilesMetricsSink
from crucible_train.adapters.files.results_store import FilesResultsStore
from crucible_train.adapters.files.run_store import FilesRunStore
from crucible_train.adapters.files.settings import (
    FilesBlobStoreSettings,
    FilesDatasetStoreSettings,
    FilesMetricsSinkSettings,
)
from crucible_train.adapters.hf_tokenizers.settings import HuggingFaceTokenizerSettings
from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer
from crucible_train.adapters.huggingface.hub_client import HuggingFaceHubClient
from crucible_train.adapters.huggingface.settings import HuggingFaceHubSettings
from crucible_train.adapters.local_torch.export import ExportResult
from crucible_train.adapters.local_torch.export import export_checkpoint as export_local_torch
from crucible_train.adapters.local_torch.model_info import LocalTorchModelInfo
from crucible_train.adapters.local_torch.sampling_client import LocalTorchSamplingClient
from crucible_train.adapters.local_torch.settings import LocalTorchModelSettings
from crucible_train.adapters.local_torch.training_client import LocalTorchTrainingClient
from crucible_train.adapters.memory.settings import MemoryVectorStoreSettings
from crucible_train.adapters.memory.vector_store import NumpyVectorStore
from crucible_train.adapters.neptune.metrics_sink import NeptuneMetricsSink
from crucible_train.adapters.neptune.settings import NeptuneMetricsSinkSettings
from crucible_train.adapters.noop import (
    NoopBlobStore,
    NoopDatasetStore,
    NoopEmbeddingClient,
    NoopHttpClient,
    NoopHubClient,
    NoopLLMClient,
    NoopMetricsSink,
    NoopModelInfo,
    NoopSamplingClient,
    NoopTokenizer,
    NoopTrainingClient,
    NoopVectorStore,
)
from crucible_train.adapters.noop.settings import NoopSettings
from crucible_train.adapters.openai_compat.llm_client import OpenAICompatLLMClient
from crucible_train.adapters.openai_compat.settings import OpenAICompatLLMSettings
from crucible_train.adapters.requests_http.http_client import RequestsHttpClient
from crucible_train.adapters.requests_http.settings import RequestsHttpSettings
from crucible_train.adapters.sentence_transformers.embedding_client import (
    SentenceTransformersEmbeddingClient,
)
from crucible_train.adapters.sentence_transformers.settings import (
    SentenceTransformersEmbeddingSettings,
)
from crucible_train.adapters.tiktoken_format.settings import TiktokenTokenizerSettings
from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer
from crucible_train.adapters.tinker.model_info import TinkerModelInfo
from crucible_train.adapters.tinker.sampling_client import TinkerSamplingClient
from crucible_train.adapters.tinker.settings import TinkerSettings
from crucible_train.adapters.tinker.tokenizer import TinkerTokenizer
from crucible_train.adapters.tinker.training_client import TinkerTrainingClient
from crucible_train.adapters.wandb.metrics_sink import WandbMetricsSink
from crucible_train.adapters.wandb.settings import WandbMetricsSinkSettings
from crucible_train.container.backends import Backend, backend, describe_branches
from crucible_train.container.resolved import ResolvedConfig
from crucible_train.container.validation import METRICS_PORT
from crucible_train.core.metrics_fanout import MultiplexMetricsSink
from crucible_train.errors import ConfigurationError
from crucible_train.ports import (
    PORTS,
    BlobStore,
    DatasetStore,
    EmbeddingClient,
    HttpClient,
    HubClient,
    LLMClient,
    MetricsSink,
    ModelInfo,
    SamplingClient,
    Tokenizer,
    TrainingClient,
    VectorStore,
)
from crucible_train.ports.results_store import ResultsStore
from crucible_train.ports.run_store import RunStore

__all__ = [
    "BACKENDS",
    "EXPORTABLE_BACKENDS",
    "AppContainer",
    "ExportResult",
    "SpoolResult",
    "backends_of",
    "container_from_config",
    "export_checkpoint",
    "find_spools",
    "injected_arguments",
    "results_store",
    "run_store",
    "sync_metrics_spools",
]


class _Closable(Protocol):
    def close(self) -> None: ...


_C = TypeVar("_C", bound=_Closable)


def _closing(adapter: _C, *close_before: object) -> Iterator[_C]:
    """Resource initializer: hand out ``adapter``; close it at ``shutdown_resources()``.

    ``close_before`` lists other resources' values only so that dependency-injector knows
    this resource depends on them and shuts it down first (it orders shutdown by direct
    dependencies between resources).
    """
    yield adapter
    adapter.close()


def _select_sinks(
    names: Sequence[str], sinks: providers.Aggregate[MetricsSink]
) -> list[MetricsSink]:
    """Build only the sinks named in ``metrics.sinks``, in that order."""
    return [sinks(name) for name in names]


class AppContainer(containers.DeclarativeContainer):
    """The application's adapters, one per port, chosen by ``containers.yaml``.

    Build it with :func:`~crucible_train.container.build_container` (or
    :func:`container_from_config`), which loads the validated configuration into
    ``config``. Only the branch named by ``config.<port>.backend`` is ever constructed
    (each branch is a ``Singleton``); ``metrics`` multiplexes the sinks listed in
    ``config.metrics.sinks``.

    Closable ports (``http`` and ``metrics``) also have a ``<port>_resource`` wrapping the
    selected adapter: get them through it (or call ``init_resources()``) and
    ``shutdown_resources()`` closes them. The resource wraps the selector's output, never
    a branch, so unselected adapters are never built. The metrics resource depends on the
    http resource, so sinks are closed (and deliver their last rows) before the HTTP
    client they use.
    """

    config = providers.Configuration(strict=True)

    training = providers.Selector[TrainingClient](
        config.training.backend,
        local_torch=backend(
            LocalTorchTrainingClient, LocalTorchModelSettings, config.training.local_torch
        ),
        noop=backend(NoopTrainingClient, NoopSettings, config.training.noop),
        tinker=backend(TinkerTrainingClient, TinkerSettings, config.training.tinker),
    )
    sampling = providers.Selector[SamplingClient](
        config.sampling.backend,
        local_torch=backend(
            LocalTorchSamplingClient, LocalTorchModelSettings, config.sampling.local_torch
        ),
        noop=backend(NoopSamplingClient, NoopSettings, config.sampling.noop),
        tinker=backend(TinkerSamplingClient, TinkerSettings, config.sampling.tinker),
    )
    tokenizer = providers.Selector[Tokenizer](
        config.tokenizer.backend,
        byte_level=backend(
            ByteLevelTokenizer, ByteLevelTokenizerSettings, config.tokenizer.byte_level
        ),
        huggingface=backend(
            HuggingFaceTokenizer, HuggingFaceTokenizerSettings, config.tokenizer.huggingface
        ),
        noop=backend(NoopTokenizer, NoopSettings, config.tokenizer.noop),
        tiktoken=backend(
            TiktokenFileTokenizer, TiktokenTokenizerSettings, config.tokenizer.tiktoken
        ),
        tinker=backend(TinkerTokenizer, TinkerSettings, config.tokenizer.tinker),
    )
    model_info = providers.Selector[ModelInfo](
        config.model_info.backend,
        local_torch=backend(
            LocalTorchModelInfo, LocalTorchModelSettings, config.model_info.local_torch
        ),
        noop=backend(NoopModelInfo, NoopSettings, config.model_info.noop),
        tinker=backend(TinkerModelInfo, TinkerSettings, config.model_info.tinker),
    )
    http = providers.Selector[HttpClient](
        config.http.backend,
        noop=backend(NoopHttpClient, NoopSettings, config.http.noop),
        requests=backend(RequestsHttpClient, RequestsHttpSettings, config.http.requests),
    )
    embedding = providers.Selector[EmbeddingClient](
        config.embedding.backend,
        noop=backend(NoopEmbeddingClient, NoopSettings, config.embedding.noop),
        sentence_transformers=backend(
            SentenceTransformersEmbeddingClient,
            SentenceTransformersEmbeddingSettings,
            config.embedding.sentence_transformers,
        ),
    )
    llm = providers.Selector[LLMClient](
        config.llm.backend,
        noop=backend(NoopLLMClient, NoopSettings, config.llm.noop),
        openai_compat=backend(
            OpenAICompatLLMClient, OpenAICompatLLMSettings, config.llm.openai_compat, http=http
        ),
    )
    blob_store = providers.Selector[BlobStore](
        config.blob_store.backend,
        files=backend(FilesBlobStore, FilesBlobStoreSettings, config.blob_store.files),
        noop=backend(NoopBlobStore, NoopSettings, config.blob_store.noop),
    )
    dataset_store = providers.Selector[DatasetStore](
        config.dataset_store.backend,
        files=backend(FilesDatasetStore, FilesDatasetStoreSettings, config.dataset_store.files),
        noop=backend(NoopDatasetStore, NoopSettings, config.dataset_store.noop),
    )
    vector_store = providers.Selector[VectorStore](
        config.vector_store.backend,
        memory=backend(NumpyVectorStore, MemoryVectorStoreSettings, config.vector_store.memory),
        noop=backend(NoopVectorStore, NoopSettings, config.vector_store.noop),
    )
    hub = providers.Selector[HubClient](
        config.hub.backend,
        huggingface=backend(HuggingFaceHubClient, HuggingFaceHubSettings, config.hub.huggingface),
        noop=backend(NoopHubClient, NoopSettings, config.hub.noop),
    )

    # Metrics: one named provider per sink; only those listed in metrics.sinks are built.
    metrics_sink = providers.Aggregate[MetricsSink](
        console=backend(ConsoleMetricsSink, ConsoleMetricsSinkSettings, config.metrics.console),
        files=backend(
            FilesMetricsSink,
            FilesMetricsSinkSettings,
            config.metrics.files,
            run_dir=config.metrics.run_dir,
        ),
        neptune=backend(
            NeptuneMetricsSink,
            NeptuneMetricsSinkSettings,
            config.metrics.neptune,
            http=http,
            run_dir=config.metrics.run_dir,
        ),
        noop=backend(NoopMetricsSink, NoopSettings, config.metrics.noop),
        wandb=backend(
            WandbMetricsSink,
            WandbMetricsSinkSettings,
            config.metrics.wandb,
            http=http,
            run_dir=config.metrics.run_dir,
        ),
    )
    metrics_sinks = providers.Singleton(_select_sinks, config.metrics.sinks, metrics_sink.provider)
    # Every configured secret is masked wherever it shows up in a logged run config.
    secret_values = providers.Object[tuple[str, ...]](())
    metrics = providers.Singleton[MetricsSink](
        MultiplexMetricsSink, sinks=metrics_sinks, secrets=secret_values
    )

    http_resource = providers.Resource[HttpClient](_closing, http)
    # Sinks that talk HTTP flush in close(): close them before the HTTP client they use.
    metrics_resource = providers.Resource[MetricsSink](_closing, metrics, http_resource)


def _branches(container: Any, port: str) -> Mapping[str, providers.Provider[Any]]:
    if port == METRICS_PORT:
        return dict(container.metrics_sink.providers)
    selector: providers.Selector[Any] = getattr(container, port)
    return selector.providers


def backends_of(container: Any = AppContainer) -> dict[str, dict[str, Backend]]:
    """Port key → backend name → :class:`Backend`, read from the diagram's selectors.

    Args:
        container: :class:`AppContainer` (the default) or an instance of it.

    Returns:
        The backends of every port in :data:`~crucible_train.ports.PORTS` order, each
        port's backends sorted by name; ``metrics`` lists the sinks.
    """
    return {
        port: dict(sorted(describe_branches(_branches(container, port)).items())) for port in PORTS
    }


class _Backends(Mapping[str, Mapping[str, Backend]]):
    """:func:`backends_of` ``(AppContainer)``, read afresh on every lookup."""

    def __getitem__(self, port: str) -> Mapping[str, Backend]:
        return MappingProxyType(backends_of()[port])

    def __iter__(self) -> Iterator[str]:
        return iter(PORTS)

    def __len__(self) -> int:
        return len(PORTS)

    def __repr__(self) -> str:
        return f"BACKENDS({backends_of()!r})"


BACKENDS: Mapping[str, Mapping[str, Backend]] = _Backends()
"""Port key → backend name → :class:`Backend`, derived from :class:`AppContainer`.

Read-only: a backend is added by adding its provider to the diagram. ``metrics`` lists
the sink backends (named in ``metrics.sinks``, not by a ``backend:`` key).
"""


def injected_arguments(port: str) -> tuple[str, ...]:
    """The arguments any adapter of ``port`` receives besides its settings, per the diagram."""
    names: list[str] = []
    for described in backends_of()[port].values():
        names += [name for name in described.injected if name not in names]
    return tuple(names)


def container_from_config(resolved: ResolvedConfig) -> AppContainer:
    """Wire an :class:`AppContainer` from an already validated configuration.

    Nothing is constructed here; adapters are built on first use.

    Args:
        resolved: the result of :func:`~crucible_train.container.load_config`.

    Returns:
        A new container (use one per run, and per test).
    """
    container = AppContainer()
    container.config.from_dict(resolved.as_dict(redact_secrets=False))
    container.secret_values.set_provides(resolved.secret_values())
    return container


def run_store(run_dir: str | os.PathLike[str]) -> RunStore:
    """The run store of ``run_dir`` (files adapter): checkpoint records, metric rewind on
    resume, stored arrays. Not a ``containers.yaml`` port: every run directory is files."""
    return FilesRunStore(run_dir)


def results_store(path: str | os.PathLike[str]) -> ResultsStore:
    """The results store of the JSONL file ``path`` (files adapter), where ``eval --out``
    keeps its results. Not a ``containers.yaml`` port: a results log is always a file."""
    return FilesResultsStore(path)


# --- logs sync: the spools the metrics sinks above left behind ---------------------------


def sync_metrics_spools(
    run_dir: Path,
    *,
    http: HttpClient,
    timeout: float,
    environ: Mapping[str, str],
    exit_code_if_unknown: int | None = None,
) -> list[SpoolResult]:
    """``logs sync``: deliver every spool under ``run_dir`` with its registered metrics sink.

    The sink class for each spool is the ``metrics`` backend named by its ``sink.json``
    (see :func:`crucible_train.adapters.delivery.sync.sync_run_dir` for the arguments).
    """
    return sync_run_dir(
        run_dir,
        sinks={kind: backend.adapter for kind, backend in BACKENDS[METRICS_PORT].items()},
        http=http,
        timeout=timeout,
        environ=environ,
        exit_code_if_unknown=exit_code_if_unknown,
    )


EXPORTABLE_BACKENDS = ("local_torch",)
"""Training backends whose checkpoints ``crucible-train export`` can write."""


def export_checkpoint(
    *,
    backend: str,
    sampler_path: str | Path,
    state_path: str | Path | None,
    settings: Mapping[str, Any],
    out: Path,
    mode: Literal["merged", "adapter"],
    tokenizer_files: Mapping[str, Path],
    eos_token_ids: Sequence[int],
) -> ExportResult:
    """``export``: one checkpoint of ``training.<backend>`` as a Hugging Face directory.

    The adapter that wrote the checkpoint knows its format; see
    :func:`crucible_train.adapters.local_torch.export.export_checkpoint` for the arguments.

    Raises:
        ConfigurationError: a backend whose checkpoints cannot be exported, or bad input.
        TrainingClientError: a checkpoint file is missing or corrupted (named).
    """
    if backend not in EXPORTABLE_BACKENDS:
        raise ConfigurationError(
            f"export: the run trained with training.backend={backend}; only "
            f"{', '.join(EXPORTABLE_BACKENDS)} checkpoints can be exported"
        )
    return export_local_torch(
        sampler_path=sampler_path,
        state_path=state_path,
        settings=settings,
        out=out,
        mode=mode,
        tokenizer_files=tokenizer_files,
        eos_token_ids=eos_token_ids,
    )
