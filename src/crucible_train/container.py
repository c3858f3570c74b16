"""Composition root: ``containers.yaml`` → validated settings → dependency-injector container.

Entry-point layer, and the ONLY module that imports adapters. It owns:

* :data:`BACKENDS`, the registry of which adapter class and settings schema serve each
  backend name of each port (adding a backend is one entry here plus its schema in
  :mod:`crucible_train.config`);
* :func:`load_config`, which layers the packaged ``containers.yaml``, an optional user
  file and dotted ``key=value`` overrides, interpolates ``${NAME}`` / ``${NAME:default}``
  inside single string values, and validates the whole result, reporting every problem
  in one :class:`~crucible_train.errors.ConfigurationError`;
* :class:`AppContainer` and :func:`build_container`, which wire one typed
  ``Selector[Port]`` per port over ``Singleton`` branches, so only the selected adapter
  is ever constructed, plus one closing ``Resource`` around each closable port.

Deliberate departures from dependency-injector's own YAML loading (see the pitfalls in
``reference/style_anchors.md`` §6): the YAML is parsed here, never with textual
interpolation (an environment value containing a newline cannot add keys); a missing
explicit file is an error; the packaged file is read through :mod:`importlib.resources`,
never a path relative to the current directory; validation happens before any provider
is called.
"""

from __future__ import annotations

import copy
import difflib
import importlib.resources
import inspect
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs
import yaml
from dependency_injector import containers, providers

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.adapters.console.metrics_sink import ConsoleMetricsSink
from crucible_train.adapters.files.blob_store import FilesBlobStore
from crucible_train.adapters.files.dataset_store import FilesDatasetStore
from crucible_train.adapters.files.metrics_sink import FilesMetricsSink
from crucible_train.adapters.files.run_store import FilesRunStore
from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer
from crucible_train.adapters.huggingface.hub_client import HuggingFaceHubClient
from crucible_train.adapters.local_torch.model_info import LocalTorchModelInfo
from crucible_train.adapters.local_torch.sampling_client import LocalTorchSamplingClient
from crucible_train.adapters.local_torch.training_client import LocalTorchTrainingClient
from crucible_train.adapters.memory.vector_store import NumpyVectorStore
from crucible_train.adapters.neptune.metrics_sink import NeptuneMetricsSink
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
from crucible_train.adapters.openai_compat.llm_client import OpenAICompatLLMClient
from crucible_train.adapters.requests_http.http_client import RequestsHttpClient
from crucible_train.adapters.sentence_transformers.embedding_client import (
    SentenceTransformersEmbeddingClient,
)
from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer
from crucible_train.adapters.tinker.model_info import TinkerModelInfo
from crucible_train.adapters.tinker.sampling_client import TinkerSamplingClient
from crucible_train.adapters.tinker.tokenizer import TinkerTokenizer
from crucible_train.adapters.tinker.training_client import TinkerTrainingClient
from crucible_train.adapters.wandb.metrics_sink import WandbMetricsSink
from crucible_train.config import (
    ByteLevelTokenizerSettings,
    ConsoleMetricsSinkSettings,
    FieldSpec,
    FilesBlobStoreSettings,
    FilesDatasetStoreSettings,
    FilesMetricsSinkSettings,
    HuggingFaceHubSettings,
    HuggingFaceTokenizerSettings,
    LocalTorchModelSettings,
    MemoryVectorStoreSettings,
    MetricsSettings,
    NeptuneMetricsSinkSettings,
    NoopSettings,
    OpenAICompatLLMSettings,
    RequestsHttpSettings,
    SentenceTransformersEmbeddingSettings,
    TiktokenTokenizerSettings,
    TinkerSettings,
    WandbMetricsSinkSettings,
    coerce_env_text,
    field_specs,
    redact,
    resolve_path_fields,
    settings_to_dict,
    unset_required_fields,
    validate_settings,
)
from crucible_train.core.metrics_fanout import MultiplexMetricsSink
from crucible_train.core.renderers.registry import list_renderers
from crucible_train.errors import ConfigurationError, MissingSecretError
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
from crucible_train.ports.run_store import RunStore
from crucible_train.recipes import RECIPES, Recipe
from crucible_train.recipes.settings import TrainSettings

__all__ = [
    "BACKENDS",
    "INJECTED_ARGUMENTS",
    "PACKAGED_CONFIG",
    "TRAIN_KEY",
    "TRAIN_RECIPES",
    "AppContainer",
    "Backend",
    "Recipe",
    "ResolvedConfig",
    "build_container",
    "container_from_config",
    "injected_arguments",
    "load_config",
    "run_store",
]

PACKAGED_CONFIG = "containers.yaml"
"""Name of the default configuration shipped inside the ``crucible_train`` package."""


@attrs.frozen(kw_only=True)
class Backend:
    """One way to serve a port: the adapter class and the schema of its settings.

    The schema's field names are the adapter's keyword arguments.

    Attributes:
        adapter: the adapter class (called with the validated settings as keywords).
        settings: the attrs settings schema from :mod:`crucible_train.config`.
    """

    adapter: type
    settings: type


BACKENDS: dict[str, dict[str, Backend]] = {
    # The three local_torch backends share one schema so they describe the same model.
    "training": {
        "local_torch": Backend(adapter=LocalTorchTrainingClient, settings=LocalTorchModelSettings),
        "noop": Backend(adapter=NoopTrainingClient, settings=NoopSettings),
        "tinker": Backend(adapter=TinkerTrainingClient, settings=TinkerSettings),
    },
    "sampling": {
        "local_torch": Backend(adapter=LocalTorchSamplingClient, settings=LocalTorchModelSettings),
        "noop": Backend(adapter=NoopSamplingClient, settings=NoopSettings),
        "tinker": Backend(adapter=TinkerSamplingClient, settings=TinkerSettings),
    },
    "tokenizer": {
        "byte_level": Backend(adapter=ByteLevelTokenizer, settings=ByteLevelTokenizerSettings),
        "huggingface": Backend(adapter=HuggingFaceTokenizer, settings=HuggingFaceTokenizerSettings),
        "noop": Backend(adapter=NoopTokenizer, settings=NoopSettings),
        "tiktoken": Backend(adapter=TiktokenFileTokenizer, settings=TiktokenTokenizerSettings),
        "tinker": Backend(adapter=TinkerTokenizer, settings=TinkerSettings),
    },
    "model_info": {
        "local_torch": Backend(adapter=LocalTorchModelInfo, settings=LocalTorchModelSettings),
        "noop": Backend(adapter=NoopModelInfo, settings=NoopSettings),
        "tinker": Backend(adapter=TinkerModelInfo, settings=TinkerSettings),
    },
    # metrics backends are sink names listed in ``metrics.sinks``, not a ``backend:``.
    "metrics": {
        "console": Backend(adapter=ConsoleMetricsSink, settings=ConsoleMetricsSinkSettings),
        "files": Backend(adapter=FilesMetricsSink, settings=FilesMetricsSinkSettings),
        "neptune": Backend(adapter=NeptuneMetricsSink, settings=NeptuneMetricsSinkSettings),
        "noop": Backend(adapter=NoopMetricsSink, settings=NoopSettings),
        "wandb": Backend(adapter=WandbMetricsSink, settings=WandbMetricsSinkSettings),
    },
    "http": {
        "noop": Backend(adapter=NoopHttpClient, settings=NoopSettings),
        "requests": Backend(adapter=RequestsHttpClient, settings=RequestsHttpSettings),
    },
    "embedding": {
        "noop": Backend(adapter=NoopEmbeddingClient, settings=NoopSettings),
        "sentence_transformers": Backend(
            adapter=SentenceTransformersEmbeddingClient,
            settings=SentenceTransformersEmbeddingSettings,
        ),
    },
    "llm": {
        "noop": Backend(adapter=NoopLLMClient, settings=NoopSettings),
        "openai_compat": Backend(adapter=OpenAICompatLLMClient, settings=OpenAICompatLLMSettings),
    },
    "blob_store": {
        "files": Backend(adapter=FilesBlobStore, settings=FilesBlobStoreSettings),
        "noop": Backend(adapter=NoopBlobStore, settings=NoopSettings),
    },
    "dataset_store": {
        "files": Backend(adapter=FilesDatasetStore, settings=FilesDatasetStoreSettings),
        "noop": Backend(adapter=NoopDatasetStore, settings=NoopSettings),
    },
    "vector_store": {
        "memory": Backend(adapter=NumpyVectorStore, settings=MemoryVectorStoreSettings),
        "noop": Backend(adapter=NoopVectorStore, settings=NoopSettings),
    },
    "hub": {
        "huggingface": Backend(adapter=HuggingFaceHubClient, settings=HuggingFaceHubSettings),
        "noop": Backend(adapter=NoopHubClient, settings=NoopSettings),
    },
}
"""Port key → backend name → :class:`Backend`. ``metrics`` lists sink backends."""

TRAIN_KEY = "train"  # the one top-level block that is not a port: `crucible-train train`


TRAIN_RECIPES: dict[str, Recipe] = RECIPES
"""Recipe name → recipe: :data:`crucible_train.recipes.RECIPES` (the same dict)."""


def run_store(run_dir: str | os.PathLike[str]) -> RunStore:
    """The run store of ``run_dir``: checkpoint records, metric rewind, stored arrays."""
    return FilesRunStore(run_dir)


METRICS_PORT = "metrics"  # the one port configured by a list of sinks instead of `backend:`

INJECTED_ARGUMENTS = ("http", "run_dir")
"""Constructor arguments the container fills in, never settings: ``http`` with the
``http`` port's adapter (for an adapter of any port but ``http`` itself) and, for metrics
sinks, ``run_dir`` from ``metrics.run_dir``. An adapter receives each one only if its
constructor has a parameter of that name."""

HTTP_PORT = "http"


def injected_arguments(port: str) -> tuple[str, ...]:
    """The :data:`INJECTED_ARGUMENTS` an adapter of ``port`` may receive."""
    if port == HTTP_PORT:
        return ()  # the HTTP client cannot be built from itself
    return INJECTED_ARGUMENTS if port == METRICS_PORT else (HTTP_PORT,)


def _takes(adapter: type, argument: str) -> bool:
    """Whether ``adapter``'s constructor has a parameter named ``argument``."""
    try:
        return argument in inspect.signature(adapter).parameters
    except (TypeError, ValueError):  # builtins without signatures take nothing of ours
        return False


# --- YAML reading -----------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate mapping keys and reads ``1e-4`` as a float.

    PyYAML silently keeps the last of two equal keys; in a config that means a second
    ``backend:`` line wins without a word. It also follows YAML 1.1, where a float needs
    a dot (``1e-4`` would be the string ``"1e-4"``); learning rates are written that way.
    """


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # unhashable key; construct_mapping reports it properly
            continue
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first defined on line {first + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, source: str) -> Any:
    """Parse YAML safely; a syntax error names ``source``, the line and the column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "invalid YAML"
        context = exc.context_mark
        if exc.problem and exc.context and context is not None and context is not mark:
            # e.g. "... (while parsing a flow sequence started at line 2, column 12)"
            problem += (
                f" ({exc.context} started at line {context.line + 1}, column {context.column + 1})"
            )
        raise ConfigurationError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: invalid YAML: {exc}") from None


def _packaged_source() -> tuple[str, str]:
    """The packaged ``containers.yaml``: (display name, text)."""
    resource = importlib.resources.files("crucible_train").joinpath(PACKAGED_CONFIG)
    try:
        text = resource.read_text(encoding="utf-8")
    except OSError as exc:  # a broken installation, not a user error, but say so plainly
        raise ConfigurationError(
            f"the packaged {PACKAGED_CONFIG} cannot be read ({exc.strerror or exc}); "
            "reinstall crucible-train"
        ) from None
    return str(resource), text


def _read_user_file(config_file: str | os.PathLike[str], base_dir: Path) -> tuple[str, str]:
    """An explicitly named config file: (absolute path, text). Missing → error."""
    path = Path(os.path.expanduser(os.fspath(config_file)))
    absolute = Path(os.path.normpath(base_dir / path))
    if not absolute.exists():
        raise ConfigurationError(f"config file {absolute} does not exist")
    if not absolute.is_file():
        raise ConfigurationError(f"config file {absolute} is not a regular file")
    try:
        text = absolute.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError(f"config file {absolute} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigurationError(
            f"config file {absolute} cannot be read: {exc.strerror or exc}"
        ) from None
    return str(absolute), text


def _load_layer(text: str, source: str) -> dict[str, Any]:
    data = _parse_yaml(text, source)
    if data is None:
        # An empty overlay almost always means the wrong file; never run on silence.
        raise ConfigurationError(f"{source}: the file is empty; expected a mapping of port blocks")
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{source}: expected a mapping of port blocks at the top level, "
            f"got a {type(data).__name__}"
        )
    return data


def _merge(base: Any, overlay: Any) -> Any:
    """Recursive merge: mappings merge key by key; anything else replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(overlay)


def _apply_override(tree: dict[str, Any], override: str) -> str | None:
    """Apply one ``dotted.key=value`` override in place; return a problem or ``None``.

    The value is never quoted in a problem: it may be a secret typed by mistake.
    """
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep:
        return (
            f"override {override!r}: expected key=value, "
            "e.g. training.backend=noop or metrics.sinks=[noop]"
        )
    if not key:
        return "override with an empty key: expected key=value, e.g. training.backend=noop"
    parts = key.split(".")
    if any(not part for part in parts):
        return f"override {key!r}: a dotted key cannot have an empty segment"
    try:
        value = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError:
        return f"override {key!r}: the value after '=' is not valid YAML"
    node = tree
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            return (
                f"override {key!r}: {where} is not a mapping, so it has no key {parts[depth + 1]!r}"
            )
        node = child
    last = parts[-1]
    node[last] = _merge(node[last], value) if last in node else value
    return None


# --- environment interpolation ----------------------------------------------------------

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


@attrs.frozen(kw_only=True)
class _EnvLeaf:
    """A string leaf that referenced environment variables, after substitution.

    Attributes:
        raw: the text as written (``${HF_TOKEN:}``); holds no secret, safe to show.
        text: the substituted text, or ``None`` when a variable without default is unset.
        variables: every variable referenced, in order.
        unset: referenced variables that were unset (or empty) and had no default.
        whole: the leaf was exactly one reference (so its type may be converted).
        default: the default of a ``whole`` reference (``None`` when it had none).
    """

    raw: str
    text: str | None = attrs.field(repr=False)
    variables: tuple[str, ...]
    unset: tuple[str, ...]
    whole: bool
    default: str | None = attrs.field(repr=False)


def _interpolate_leaf(text: str, environ: Mapping[str, str]) -> str | _EnvLeaf:
    matches = list(_REFERENCE.finditer(text))
    if not matches:
        return text
    unset: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name, "")
        # Like the shell's ${NAME:-default}: an empty variable also takes the default.
        if value == "":
            if default is None:
                unset.append(name)
                return ""
            return default
        return value

    substituted = _REFERENCE.sub(substitute, text)
    whole = len(matches) == 1 and matches[0].span() == (0, len(text))
    return _EnvLeaf(
        raw=text,
        text=None if unset else substituted,
        variables=tuple(match.group(1) for match in matches),
        unset=tuple(unset),
        whole=whole,
        default=matches[0].group(2) if whole else None,
    )


def _interpolate(tree: Any, environ: Mapping[str, str]) -> Any:
    """Replace string leaves holding ``${...}`` with :class:`_EnvLeaf`; keys are untouched.

    This runs on the parsed tree, so a value containing newlines or ``key: value`` text
    stays one string and can never add structure.
    """
    if isinstance(tree, dict):
        return {key: _interpolate(value, environ) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_interpolate(item, environ) for item in tree]
    if isinstance(tree, str) and "${" in tree:
        return _interpolate_leaf(tree, environ)
    return tree


def _unset_message(path: str, leaf: _EnvLeaf) -> str:
    names = ", ".join(leaf.unset)
    plural = "s" if len(leaf.unset) > 1 else ""
    verb = "are" if plural else "is"
    return (
        f"{path}: environment variable{plural} {names} {verb} not set "
        f"(referenced as {leaf.raw!r}; export it or write ${{NAME:default}})"
    )


# --- validation -------------------------------------------------------------------------


@attrs.define
class _Report:
    """Problems collected while validating; missing secrets are counted apart."""

    problems: list[str] = attrs.Factory(list)
    missing_secrets: int = 0

    def add(self, problem: str) -> None:
        self.problems.append(problem)

    def extend(self, problems: Sequence[str]) -> None:
        self.problems.extend(problems)

    def missing_secret(self, problem: str) -> None:
        self.problems.append(problem)
        self.missing_secrets += 1

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        if self.missing_secrets == len(self.problems):
            raise MissingSecretError(*self.problems)
        raise ConfigurationError(*self.problems)


def _plain(value: Any, path: str, report: _Report) -> Any:
    """Resolve :class:`_EnvLeaf` values anywhere in ``value`` to their text."""
    if isinstance(value, _EnvLeaf):
        if value.text is None:
            report.add(_unset_message(path, value))
        return value.text
    if isinstance(value, dict):
        return {key: _plain(item, f"{path}.{key}", report) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, f"{path}[{index}]", report) for index, item in enumerate(value)]
    return value


def _from_env(value: Any) -> bool:
    """Whether any part of ``value`` came from an environment variable."""
    if isinstance(value, _EnvLeaf):
        return True
    if isinstance(value, dict):
        return any(_from_env(item) for item in value.values())
    if isinstance(value, list):
        return any(_from_env(item) for item in value)
    return False


def _raw_text(value: Any) -> Any:
    """Values of unknown keys: keep what was written, without resolving anything."""
    if isinstance(value, _EnvLeaf):
        return value.raw
    if isinstance(value, dict):
        return {key: _raw_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_raw_text(item) for item in value]
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _valid_list(names: Sequence[str]) -> str:
    return ", ".join(sorted(names))


def _suggestion(name: object, names: Sequence[str]) -> str:
    if not isinstance(name, str):
        return ""
    matches = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


@attrs.define
class _Validator:
    """Validates the merged, interpolated tree; every problem goes to ``report``.

    Attributes:
        environ: environment for secrets (interpolation already happened).
        base_dir: directory relative paths are resolved against.
        report: where problems are collected.
        secret_keys: dotted keys of every secret field seen, for redaction.
    """

    environ: Mapping[str, str]
    base_dir: Path
    report: _Report = attrs.Factory(_Report)
    secret_keys: set[str] = attrs.Factory(set)

    def tree(self, tree: dict[Any, Any]) -> dict[str, Any]:
        """Check the top level, then each port block; return the resolved config."""
        ports = list(PORTS)
        top = [*ports, TRAIN_KEY]
        for key in tree:
            if key not in top:
                self.report.add(
                    f"{key}: unknown top-level key{_suggestion(key, top)}; "
                    f"valid: {_valid_list(top)}"
                )
        resolved: dict[str, Any] = {}
        for port in ports:
            selector = "sinks: [...]" if port == METRICS_PORT else "backend: ..."
            if port not in tree:
                self.report.add(f"{port}: missing port block; add `{port}:` with `{selector}`")
                continue
            block = tree[port]
            if not isinstance(block, dict):
                self.report.add(
                    f"{port}: expected a mapping with `{selector}`, got {_shown(_raw_text(block))}"
                )
                continue
            resolved[port] = self.metrics(block) if port == METRICS_PORT else self.port(port, block)
        self.http_users_have_http(resolved)
        if TRAIN_KEY in tree:
            resolved[TRAIN_KEY] = self.train(tree[TRAIN_KEY])
        return resolved

    def train(self, block: Any) -> dict[str, Any]:
        """The ``train`` block: shared settings, then one sub-block per recipe.

        Each recipe's keys are the fields of its config class; a recipe whose module is
        not installed is kept as written.
        """
        if block is None:
            block = {}
        if not isinstance(block, dict):
            self.report.add(f"{TRAIN_KEY}: expected a mapping, got {_shown(_raw_text(block))}")
            return {}
        own_keys = list(field_specs(TrainSettings))
        own = {key: block[key] for key in own_keys if key in block}
        resolved: dict[str, Any] = (
            self.validate_block(TrainSettings, TRAIN_KEY, own, selected=True) or {}
        )
        renderer = resolved.get("renderer")
        if isinstance(renderer, str):
            names = list_renderers()
            if renderer.lower() not in names:
                self.report.add(
                    f"{TRAIN_KEY}.renderer: unknown renderer {renderer!r}"
                    f"{_suggestion(renderer, names)}; valid: {', '.join(names)}"
                )
        keys = [*own_keys, *TRAIN_RECIPES]
        for key in block:
            if key not in keys:
                self.report.add(
                    f"{TRAIN_KEY}.{key}: unknown key{_suggestion(key, keys)}; "
                    f"valid: {', '.join(keys)}"
                )
        for name, recipe in TRAIN_RECIPES.items():
            raw = block.get(name)
            schema = recipe.load_config_class()
            settings = self.validate_block(schema, f"{TRAIN_KEY}.{name}", raw, selected=True)
            if settings is not None:
                resolved[name] = settings
        return resolved

    def http_users_have_http(self, resolved: dict[str, Any]) -> None:
        """A selected adapter that talks HTTP (any port) needs a real ``http.backend``."""
        http = resolved.get(HTTP_PORT, {}).get("backend")
        if http != "noop":
            return  # a real client, or an invalid backend that is reported already
        for port, block in resolved.items():
            if HTTP_PORT not in injected_arguments(port):
                continue
            if port == METRICS_PORT:
                for index, name in enumerate(block.get("sinks", [])):
                    if _takes(BACKENDS[port][name].adapter, HTTP_PORT):
                        self.report.add(
                            f"{port}.sinks[{index}]: sink {name!r} sends its data over HTTP, "
                            "but http.backend is 'noop'; set http.backend: requests"
                        )
                continue
            name = block.get("backend")
            if name is not None and _takes(BACKENDS[port][name].adapter, HTTP_PORT):
                self.report.add(
                    f"{port}.backend: backend {name!r} sends its requests over HTTP, "
                    "but http.backend is 'noop'; set http.backend: requests"
                )

    def port(self, port: str, block: dict[Any, Any]) -> dict[str, Any]:
        """A port chosen by ``backend:``: check the name, then the sub-blocks."""
        backends = BACKENDS[port]
        valid = _valid_list(list(backends))
        chosen: list[str] = []
        if "backend" not in block:
            self.report.add(f"{port}.backend: missing; valid: {valid}")
        else:
            count = len(self.report.problems)
            name = _plain(block["backend"], f"{port}.backend", self.report)
            if len(self.report.problems) > count:
                pass  # an unset environment variable, already reported
            elif not isinstance(name, str):
                self.report.add(
                    f"{port}.backend: expected a backend name, got {_shown(name)}; valid: {valid}"
                )
            elif name not in backends:
                self.report.add(f"{port}.backend: unknown backend {name!r}; valid: {valid}")
            else:
                chosen.append(name)
        blocks = self.sub_blocks(port, block, selected=chosen, reserved=("backend",))
        return {"backend": chosen[0] if chosen else None, **blocks}

    def metrics(self, block: dict[Any, Any]) -> dict[str, Any]:
        """The metrics port, chosen by a list of sinks: check the list, then the sub-blocks."""
        port = METRICS_PORT
        backends = BACKENDS[port]
        valid = _valid_list(list(backends))
        sinks: list[str] = []
        if "sinks" not in block:
            self.report.add(
                f"{port}.sinks: missing; list the sinks to log to, e.g. [noop]; valid: {valid}"
            )
        else:
            count = len(self.report.problems)
            raw = _plain(block["sinks"], f"{port}.sinks", self.report)
            if len(self.report.problems) > count:
                pass  # an unset environment variable, already reported
            elif not isinstance(raw, list):
                self.report.add(
                    f"{port}.sinks: expected a list of sink names such as [noop], "
                    f"got {_shown(raw)}; valid: {valid}"
                )
            elif not raw:
                self.report.add(
                    f"{port}.sinks: is empty; list at least one sink (noop logs nothing)"
                )
            names = raw if isinstance(raw, list) and len(self.report.problems) == count else []
            for index, name in enumerate(names):
                where = f"{port}.sinks[{index}]"
                if not isinstance(name, str):
                    self.report.add(f"{where}: expected a sink name, got {_shown(name)}")
                elif name not in backends:
                    self.report.add(f"{where}: unknown sink {name!r}; valid: {valid}")
                elif name in sinks:
                    self.report.add(f"{where}: sink {name!r} is listed twice; list each sink once")
                else:
                    sinks.append(name)
        if "backend" in block:
            # The most likely slip: configuring metrics like every other port.
            self.report.add(
                f"{port}.backend: metrics has no single backend; "
                "list sink names instead, e.g. sinks: [noop]"
            )
            block = {key: value for key, value in block.items() if key != "backend"}
        own = {key: block[key] for key in field_specs(MetricsSettings) if key in block}
        settings = self.validate_block(MetricsSettings, port, own, selected=True) or {}
        reserved = ("sinks", *field_specs(MetricsSettings))
        return {
            "sinks": sinks,
            **settings,
            **self.sub_blocks(port, block, selected=sinks, reserved=reserved),
        }

    def sub_blocks(
        self, port: str, block: dict[Any, Any], *, selected: list[str], reserved: Sequence[str]
    ) -> dict[str, Any]:
        """Validate every backend sub-block present (and the selected ones even if absent).

        Returns the resolved settings of the selected backends only, in ``selected`` order.
        """
        backends = BACKENDS[port]
        keys = [*reserved, *sorted(backends)]
        resolved: dict[str, Any] = {}
        for key, raw in block.items():
            if key in reserved:
                continue
            if key not in backends:
                self.report.add(
                    f"{port}.{key}: unknown key{_suggestion(key, keys)}; valid: {', '.join(keys)}"
                )
                continue
            resolved[key] = self.settings(port, key, raw, selected=key in selected)
        # A selected backend without a sub-block takes all its defaults.
        return {
            name: resolved[name] if name in block else self.settings(port, name, {}, selected=True)
            for name in selected
        }

    def settings(self, port: str, name: str, raw: Any, *, selected: bool) -> dict[str, Any] | None:
        """Validate one backend's settings sub-block; return its resolved settings.

        Secrets are resolved from the environment; a required one that is unset is a
        problem only when the backend is selected. Whole ``${NAME}`` leaves are
        converted to the field's type. Paths are made absolute.
        """
        backend = BACKENDS[port][name]
        return self.validate_block(backend.settings, f"{port}.{name}", raw, selected=selected)

    def validate_block(
        self, schema: type, key_path: str, raw: Any, *, selected: bool
    ) -> dict[str, Any] | None:
        """Validate one settings mapping against ``schema``; return its resolved settings."""
        if raw is None:
            raw = {}  # `noop:` with nothing after it means "no settings"
        if not isinstance(raw, dict):
            self.report.add(
                f"{key_path}: expected a mapping of settings, got {_shown(_raw_text(raw))}"
            )
            return None
        specs = field_specs(schema)
        values: dict[str, Any] = {}
        # Fields already reported (or, for unselected backends, secrets not needed): leave
        # them out and do not let validate_settings call them missing a second time.
        failed: set[str] = set()
        before = len(self.report.problems)
        for spec in specs.values():
            if spec.is_secret:
                self.secret_keys.add(f"{key_path}.{spec.name}")
                usable, secret = self.secret(
                    spec, raw.get(spec.name), f"{key_path}.{spec.name}", selected=selected
                )
                if usable:
                    values[spec.name] = secret
                else:
                    failed.add(spec.name)
        for key, value in raw.items():
            known = specs.get(key) if isinstance(key, str) else None
            path = f"{key_path}.{key}"
            if known is None:
                values[key] = _raw_text(value)  # validate_settings reports the unknown key
            elif known.is_secret:
                continue
            elif isinstance(value, _EnvLeaf) and value.whole and value.text is not None:
                try:
                    values[key] = coerce_env_text(known, value.text)
                except ValueError as exc:
                    # The value itself is not shown: environment variables may hold secrets.
                    self.report.add(
                        f"{path}: {exc}, but {value.raw!r} gives a value that is not one"
                    )
                    failed.add(key)
            else:
                count = len(self.report.problems)
                values[key] = _plain(value, path, self.report)
                if len(self.report.problems) > count:
                    failed.add(key)
                    del values[key]
        instance, problems = validate_settings(
            schema,
            values,
            key_path,
            allow_missing=failed,
            unquoted={key for key, value in raw.items() if _from_env(value)},
        )
        self.report.extend(problems)
        if selected:
            # Checked on the given values so that it is reported even when a missing
            # secret kept the instance from being built.
            given = {k: v for k, v in values.items() if k not in failed}
            self.report.extend(unset_required_fields(schema, given, key_path))
        if instance is None or len(self.report.problems) > before:
            return None
        return settings_to_dict(resolve_path_fields(instance, self.base_dir))

    def secret(
        self, spec: FieldSpec, value: Any, path: str, *, selected: bool
    ) -> tuple[bool, str | None]:
        """Resolve a secret field. Returns (usable, value); problems are reported.

        ``value`` is what the file holds: absent/``None`` (read the field's conventional
        variable) or a whole ``${NAME}`` / ``${NAME:}`` reference. Anything else is a
        literal secret and refused, without quoting it.
        """
        how = f"write `{spec.name}: ${{{spec.secret_env}:}}` and export {spec.secret_env}"
        if value is None:
            variable = spec.secret_env or ""
        elif isinstance(value, _EnvLeaf) and value.whole:
            variable = value.variables[0]
            if value.default:
                self.report.add(
                    f"{path}: a secret's ${{{variable}:...}} default must be empty; {how}"
                )
                return False, None
        else:
            self.report.add(f"{path}: secrets must come from environment variables; {how}")
            return False, None
        text = self.environ.get(variable)
        if text is not None and text.strip():
            return True, text
        if not spec.required:
            return True, None  # an optional secret is simply absent
        if selected:
            state = "is not set" if text is None else "is set but empty"
            self.report.missing_secret(f"{path}: environment variable {variable} {state}")
        return False, None


# --- resolved configuration -------------------------------------------------------------


@attrs.frozen(kw_only=True, repr=False)
class ResolvedConfig:
    """A validated configuration: per port the chosen backend and its complete settings.

    Relative paths are already absolute and environment references already substituted,
    so this is exactly what the container will build. Unselected backend sub-blocks were
    validated but are not kept. Secrets are held in memory but never shown: ``repr`` and
    the default :meth:`as_dict` / :meth:`to_yaml` mask them as ``***``.

    Attributes:
        sources: where the layers came from (packaged file, user file, overrides), in
            merge order; for display.
        secret_keys: dotted keys of every secret field (``hub.huggingface.token``).
    """

    sources: tuple[str, ...]
    secret_keys: frozenset[str]
    _data: dict[str, Any] = attrs.field(alias="data")

    def secret_values(self) -> tuple[str, ...]:
        """The values of every set secret, for value-based redaction (never print them)."""
        values: list[str] = []
        for dotted in sorted(self.secret_keys):
            node: Any = self._data
            for part in dotted.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, str) and node:
                values.append(node)
        return tuple(values)

    def as_dict(self, *, redact_secrets: bool = True) -> dict[str, Any]:
        """A deep copy of the configuration as plain data.

        Args:
            redact_secrets: replace set secrets with ``"***"`` (the default). Only the
                container passes ``False``, to hand adapters their credentials.
        """
        if redact_secrets:
            return redact(self._data, secret_keys=self.secret_keys)
        return copy.deepcopy(self._data)

    def backends(self) -> dict[str, str | list[str]]:
        """Port key → selected backend name (``metrics``: the list of sink names)."""
        chosen: dict[str, str | list[str]] = {}
        for port, block in self._data.items():
            if port == TRAIN_KEY:
                continue
            chosen[port] = list(block["sinks"]) if port == METRICS_PORT else block["backend"]
        return chosen

    def summary(self) -> str:
        """One line naming the chosen backends, e.g. ``training=noop, ..., metrics=[noop]``."""
        parts = []
        for port, chosen in self.backends().items():
            shown = f"[{', '.join(chosen)}]" if isinstance(chosen, list) else chosen
            parts.append(f"{port}={shown}")
        return ", ".join(parts)

    def to_yaml(self) -> str:
        """The configuration as YAML with secrets masked, headed by a comment on its sources."""
        header = "".join(f"# from: {source}\n" for source in self.sources)
        body = yaml.safe_dump(self.as_dict(), sort_keys=False, default_flow_style=False)
        return header + body

    def __repr__(self) -> str:
        return f"ResolvedConfig(sources={list(self.sources)!r}, backends={self.backends()!r})"


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> ResolvedConfig:
    """Load, layer, interpolate and validate the configuration.

    Layers, each merged recursively over the previous one: the packaged
    ``containers.yaml``; ``config_file`` when given; then each ``key=value`` override
    (the value is read as YAML: ``[a, b]``, ``3``, ``true``). ``${NAME}`` and
    ``${NAME:default}`` are then replaced inside single string values only.

    Args:
        config_file: a YAML file merged over the packaged default; relative to
            ``base_dir``. Giving a file that does not exist is an error.
        overrides: dotted ``key=value`` strings, e.g. ``"training.backend=noop"``.
        environ: environment variables for interpolation and secrets (default:
            ``os.environ``).
        base_dir: directory relative paths are resolved against (default: the current
            working directory, i.e. where the command was started).

    Returns:
        The validated configuration.

    Raises:
        MissingSecretError: the only problems are secrets whose variables are unset.
        ConfigurationError: anything else; every problem is listed, one per line.
    """
    env = os.environ if environ is None else environ
    base = Path(os.path.abspath(Path.cwd() if base_dir is None else base_dir))
    packaged_name, packaged_text = _packaged_source()
    tree = _load_layer(packaged_text, packaged_name)
    sources = [packaged_name]
    if config_file is not None:
        user_name, user_text = _read_user_file(config_file, base)
        tree = _merge(tree, _load_layer(user_text, user_name))
        sources.append(user_name)
    validator = _Validator(environ=env, base_dir=base)
    override_keys: list[str] = []
    for override in overrides:
        problem = _apply_override(tree, override)
        if problem is None:
            override_keys.append(override.partition("=")[0].strip())
        else:
            validator.report.add(problem)  # keep going: report everything at once
    if override_keys:
        sources.append(f"overrides: {', '.join(override_keys)}")
    resolved = validator.tree(_interpolate(tree, env))
    validator.report.raise_if_any()
    return ResolvedConfig(
        sources=tuple(sources), secret_keys=frozenset(validator.secret_keys), data=resolved
    )


# --- container --------------------------------------------------------------------------


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
    names: Sequence[str], branches: providers.Aggregate[MetricsSink]
) -> list[MetricsSink]:
    """Build only the sinks named in ``metrics.sinks``, in that order."""
    return [branches(name) for name in names]


class AppContainer(containers.DeclarativeContainer):
    """The application's adapters, one per port, chosen by ``containers.yaml``.

    Build it with :func:`build_container` (or :func:`container_from_config`), which loads
    the validated configuration into ``config`` and fills each selector with one
    ``Singleton`` branch per registered backend. Only the branch named by
    ``config.<port>.backend`` is ever constructed. ``metrics`` multiplexes the sinks
    listed in ``config.metrics.sinks``; each sink whose constructor takes ``run_dir`` gets
    ``config.metrics.run_dir``, and every adapter (of any port) whose constructor takes
    ``http`` gets the ``http`` port's adapter (see :data:`INJECTED_ARGUMENTS`).

    Closable ports (those whose protocol has ``close()``: ``http`` and ``metrics``) also
    have a ``<port>_resource`` wrapping the selected adapter: get them through it (or call
    ``init_resources()``) and ``shutdown_resources()`` closes them. The resource wraps the
    selector's output, never a branch, so unselected adapters are never built. The
    metrics resource depends on the http resource, so sinks are closed (and deliver their
    last rows) before the HTTP client they use.
    """

    config = providers.Configuration(strict=True)

    training = providers.Selector[TrainingClient](config.training.backend)
    sampling = providers.Selector[SamplingClient](config.sampling.backend)
    tokenizer = providers.Selector[Tokenizer](config.tokenizer.backend)
    model_info = providers.Selector[ModelInfo](config.model_info.backend)
    http = providers.Selector[HttpClient](config.http.backend)
    embedding = providers.Selector[EmbeddingClient](config.embedding.backend)
    llm = providers.Selector[LLMClient](config.llm.backend)
    blob_store = providers.Selector[BlobStore](config.blob_store.backend)
    dataset_store = providers.Selector[DatasetStore](config.dataset_store.backend)
    vector_store = providers.Selector[VectorStore](config.vector_store.backend)
    hub = providers.Selector[HubClient](config.hub.backend)

    # Metrics: one Singleton per sink backend; only those listed in metrics.sinks are built.
    metrics_sink_branches = providers.Aggregate[MetricsSink]()
    metrics_sinks = providers.Singleton(
        _select_sinks, config.metrics.sinks, metrics_sink_branches.provider
    )
    metrics = providers.Singleton[MetricsSink](MultiplexMetricsSink, sinks=metrics_sinks)

    http_resource = providers.Resource[HttpClient](_closing, http)
    # Sinks that talk HTTP flush in close(): close them before the HTTP client they use.
    metrics_resource = providers.Resource[MetricsSink](_closing, metrics, http_resource)


def _branch(
    container: AppContainer, port: str, name: str, backend: Backend
) -> providers.Provider[Any]:
    """A Singleton building ``backend.adapter`` from ``config.<port>.<name>.<field>``.

    Adapters also get the :func:`injected_arguments` of their port that their constructor
    names: ``http`` (the ``http`` port's adapter, the same instance every other user of
    the port gets) and, for metrics sinks, ``run_dir`` (``metrics.run_dir``).
    """
    block = container.config[port][name]
    kwargs: dict[str, Any] = {field: block[field] for field in field_specs(backend.settings)}
    injected = injected_arguments(port)
    if "run_dir" in injected and _takes(backend.adapter, "run_dir"):
        kwargs["run_dir"] = container.config.metrics.run_dir
    if HTTP_PORT in injected and _takes(backend.adapter, HTTP_PORT):
        kwargs[HTTP_PORT] = container.http
    return providers.Singleton(backend.adapter, **kwargs)


def container_from_config(resolved: ResolvedConfig) -> AppContainer:
    """Wire an :class:`AppContainer` from an already validated configuration.

    Nothing is constructed here; adapters are built on first use.

    Args:
        resolved: the result of :func:`load_config`.

    Returns:
        A new container (use one per run, and per test).
    """
    container = AppContainer()
    container.config.from_dict(resolved.as_dict(redact_secrets=False))
    for port in PORTS:
        branches = {
            name: _branch(container, port, name, backend)
            for name, backend in BACKENDS[port].items()
        }
        if port == METRICS_PORT:
            container.metrics_sink_branches.set_providers(branches)
        else:
            selector: providers.Selector[Any] = getattr(container, port)
            selector.set_providers(**branches)
    # Every configured secret is masked wherever it shows up in a logged run config.
    container.metrics.add_kwargs(secrets=resolved.secret_values())
    return container


def build_container(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    *,
    base_dir: Path | None = None,
) -> AppContainer:
    """Load and validate the configuration, then wire the container.

    Args:
        config_file: optional YAML file merged over the packaged default.
        overrides: dotted ``key=value`` overrides applied last.
        environ: environment for interpolation and secrets (default ``os.environ``).
        base_dir: directory relative paths resolve against (default: current directory).

    Returns:
        The container; call ``shutdown_resources()`` when done with it.

    Raises:
        MissingSecretError: only secrets are missing.
        ConfigurationError: the configuration is invalid (every problem listed).
    """
    return container_from_config(load_config(config_file, overrides, environ, base_dir))
