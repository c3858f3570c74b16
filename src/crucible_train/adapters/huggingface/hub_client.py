"""Hugging Face Hub client (adapter layer, ``huggingface_hub``): cached, offline-safe downloads.

Files land in the standard Hugging Face cache layout and the local paths are returned.
Every setting (endpoint, cache directory, token, timeout) is passed to ``huggingface_hub``
explicitly, so the adapter behaves the same whatever ``HF_ENDPOINT``, ``HF_TOKEN`` or
``HF_HOME`` say; the one environment variable it honours is ``HF_HUB_OFFLINE=1``, which
turns offline mode on.

Why a probe: when the hub cannot be reached and a file is not cached, ``huggingface_hub``
retries with exponential back-off (about 23 s) and a 60 s timeout before giving up, and
its listing calls have no timeout at all. The port promises a prompt
:class:`~crucible_train.errors.HubUnavailableError`, so each call first makes one small
request (a ``HEAD`` of the file, or the repository's info) bounded by ``timeout`` and with
no retries; only when that succeeds is the real call made. When the probe fails the
adapter serves the call from the cache, or raises ``HubUnavailableError`` saying what to do.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import attrs

from crucible_train.errors import (
    AdapterUnavailableError,
    ConfigurationError,
    CrucibleError,
    HubClientError,
    HubUnavailableError,
)
from crucible_train.ports.hub import HubClient

__all__ = ["DEFAULT_ENDPOINT", "HuggingFaceHubClient"]

DEFAULT_ENDPOINT: Final = "https://huggingface.co"
"""The endpoint used when none is given (``HF_ENDPOINT`` is deliberately ignored)."""

_LIBRARY_NAME: Final = "crucible-train"
_COMMIT_HASH: Final = re.compile(r"[0-9a-f]{40}")
_TRUE_VALUES: Final = frozenset({"1", "ON", "YES", "TRUE"})  # huggingface_hub's own set
# 408/429/5xx mean "the hub is there but not serving": treat like unreachable and use the cache.
_UNAVAILABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
_REASON_LIMIT: Final = 200

_T = TypeVar("_T")


def _error_class(name: str) -> type[BaseException] | None:
    """A ``huggingface_hub`` exception class by name (its module moved between versions)."""
    for module_name in ("huggingface_hub.errors", "huggingface_hub.utils"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        found = getattr(module, name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
    return None


def _error_classes(*names: str) -> tuple[type[BaseException], ...]:
    return tuple(cls for cls in map(_error_class, names) if cls is not None)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection-level error bases of whichever HTTP library this huggingface_hub uses.

    Looked up in ``sys.modules`` only: huggingface_hub has already imported its own HTTP
    library, and importing the others just to name their exceptions would be wasteful.
    """
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name, attribute in (
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "ConnectionError"),
        ("requests", "Timeout"),
    ):
        module = sys.modules.get(module_name)
        cls = getattr(module, attribute, None) if module is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


@attrs.frozen
class _VendorErrors:
    """The huggingface_hub exception classes the adapter translates, resolved once."""

    gated: tuple[type[BaseException], ...]
    repo_not_found: tuple[type[BaseException], ...]
    revision_not_found: tuple[type[BaseException], ...]
    cache_miss: tuple[type[BaseException], ...]
    entry_not_found: tuple[type[BaseException], ...]
    http: tuple[type[BaseException], ...]
    unreachable: tuple[type[BaseException], ...]
    invalid_argument: tuple[type[BaseException], ...]

    @classmethod
    def load(cls) -> _VendorErrors:
        return cls(
            gated=_error_classes("GatedRepoError"),
            repo_not_found=_error_classes("RepositoryNotFoundError"),
            revision_not_found=_error_classes("RevisionNotFoundError"),
            cache_miss=_error_classes("LocalEntryNotFoundError", "CachedRepoTreeNotFoundError"),
            entry_not_found=_error_classes("EntryNotFoundError"),
            http=_error_classes("HfHubHTTPError"),
            unreachable=(*_transport_errors(), *_error_classes("OfflineModeIsEnabled")),
            invalid_argument=_error_classes("HFValidationError"),
        )


@attrs.frozen
class _Target:
    """What a call asked for, for error messages."""

    repo_id: str
    revision: str | None
    filename: str | None = None

    def describe(self) -> str:
        revision = f" at revision {self.revision!r}" if self.revision else ""
        if self.filename is None:
            return f"repository {self.repo_id!r}{revision}"
        return f"file {self.filename!r} of repository {self.repo_id!r}{revision}"


class _NoCachedListingError(Exception):
    """The installed huggingface_hub cannot list a repository from the cache."""


def _safe_endpoint(endpoint: str) -> str:
    """The endpoint without any ``user:password@`` part, for messages."""
    parts = urlsplit(endpoint)
    if "@" not in parts.netloc:
        return endpoint
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise HubClientError(f"{what} must be a non-empty string, got {value!r}")
    return value


class HuggingFaceHubClient(HubClient):
    """Downloads model files from a Hugging Face Hub (or a compatible mirror) into a cache.

    Args:
        endpoint: hub base URL; ``None`` means ``https://huggingface.co``.
        cache_dir: absolute cache directory; ``None`` means huggingface_hub's standard
            cache (``~/.cache/huggingface/hub``), shared with ``transformers``.
        token: access token for private or gated repositories; ``None`` or ``""`` sends
            no token (a token saved by ``hf auth login`` is not picked up implicitly). The
            token never appears in ``repr``, ``str`` or error messages.
        offline: serve every call from the cache without touching the network
            (``HF_HUB_OFFLINE=1`` in the environment has the same effect).
        timeout: seconds to wait for the hub to answer a metadata request; downloads of
            file bodies use huggingface_hub's own read timeout.

    Raises:
        AdapterUnavailableError: ``huggingface_hub`` is not installed.
        ConfigurationError: an argument is malformed (relative ``cache_dir``, non-HTTP
            endpoint, non-positive timeout).

    Thread-safe: each call is independent and huggingface_hub locks its cache files.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        cache_dir: str | None = None,
        token: str | None = None,
        offline: bool = False,
        timeout: float = 10.0,
    ) -> None:
        try:
            from huggingface_hub import constants
        except ImportError as exc:
            raise AdapterUnavailableError(
                "hub.backend 'huggingface' needs the huggingface_hub package; install it with "
                "pip install 'crucible-train[hub]', or set hub.backend: noop in containers.yaml "
                "to run without a model hub"
            ) from exc
        self._endpoint = self._check_endpoint(endpoint)
        self._cache_dir = self._check_cache_dir(cache_dir, constants.HF_HUB_CACHE)
        if token is not None and not isinstance(token, str):
            raise ConfigurationError(f"hub token must be a string, got {type(token).__name__}")
        self._token: str | None = token or None
        if not isinstance(offline, bool):
            raise ConfigurationError(f"hub offline must be true or false, got {offline!r}")
        self._offline = offline
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ConfigurationError(f"hub timeout is {timeout!r}; use a number of seconds > 0")
        self._timeout = float(timeout)
        self._errors = _VendorErrors.load()

    @staticmethod
    def _check_endpoint(endpoint: str | None) -> str:
        if endpoint is None:
            return DEFAULT_ENDPOINT
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                f"hub endpoint {endpoint!r} is not an http(s) URL such as {DEFAULT_ENDPOINT!r}"
            )
        return endpoint.rstrip("/")

    @staticmethod
    def _check_cache_dir(cache_dir: str | None, default: str) -> str:
        if cache_dir is None:
            return os.path.normpath(default)
        if not isinstance(cache_dir, str) or not os.path.isabs(cache_dir):
            raise ConfigurationError(
                f"hub cache_dir {cache_dir!r} is not an absolute path; the container resolves "
                "relative paths, so pass an absolute one (or None for the standard cache)"
            )
        return os.path.normpath(cache_dir)

    # --- public -----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The hub base URL requests go to."""
        return self._endpoint

    @property
    def cache_dir(self) -> str:
        """The cache directory files are downloaded into."""
        return self._cache_dir

    def __repr__(self) -> str:
        token = "<set>" if self._token else None
        return (
            f"HuggingFaceHubClient(endpoint={_safe_endpoint(self._endpoint)!r}, "
            f"cache_dir={self._cache_dir!r}, offline={self._offline}, "
            f"timeout={self._timeout}, token={token})"
        )

    def download(self, repo_id: str, filename: str, *, revision: str | None = None) -> Path:
        """Local path of ``filename`` from the model repository ``repo_id``.

        Args:
            repo_id: ``"namespace/name"``.
            filename: path inside the repository (``"config.json"``, ``"sub/x.bin"``).
            revision: branch, tag or commit hash; ``None`` means ``main``. A commit hash
                already in the cache is served without any network request.

        Raises:
            HubUnavailableError: offline or unreachable, and the file is not cached.
            HubClientError: the repository, revision or file does not exist (or is not
                accessible with the configured token).
        """
        from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

        target = _Target(
            _check_text(repo_id, "repo_id"), revision, _check_text(filename, "filename")
        )

        def fetch(local_only: bool) -> Path:
            path = hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=self._cache_dir,
                endpoint=self._endpoint,
                token=self._auth,
                etag_timeout=self._timeout,
                local_files_only=local_only,
                library_name=_LIBRARY_NAME,
            )
            return Path(path)

        def probe() -> None:
            url = hf_hub_url(repo_id, filename, revision=revision, endpoint=self._endpoint)
            get_hf_file_metadata(
                url,
                token=self._auth,
                timeout=self._timeout,
                endpoint=self._endpoint,
                library_name=_LIBRARY_NAME,
            )

        return self._run(target, fetch, probe)

    def snapshot(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        allow_patterns: Sequence[str] | None = None,
    ) -> Path:
        """Local directory holding the repository's files that match ``allow_patterns``.

        Args:
            repo_id: ``"namespace/name"``.
            revision: branch, tag or commit hash; ``None`` means ``main``.
            allow_patterns: glob patterns (``["*.json", "*.safetensors"]``); ``None`` takes
                every file.

        Raises:
            HubUnavailableError: offline or unreachable, and no complete snapshot is cached.
            HubClientError: the repository or revision does not exist.
        """
        from huggingface_hub import snapshot_download

        target = _Target(_check_text(repo_id, "repo_id"), revision)
        patterns = (
            None
            if allow_patterns is None
            else [allow_patterns]
            if isinstance(allow_patterns, str)
            else list(allow_patterns)
        )

        def fetch(local_only: bool) -> Path:
            path = snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=self._cache_dir,
                endpoint=self._endpoint,
                token=self._auth,
                etag_timeout=self._timeout,
                local_files_only=local_only,
                allow_patterns=patterns,
                library_name=_LIBRARY_NAME,
            )
            return Path(path)

        return self._run(target, fetch, lambda: self._probe_repository(repo_id, revision))

    def list_files(self, repo_id: str, *, revision: str | None = None) -> list[str]:
        """Sorted paths of every file in the repository.

        Offline, the listing comes from the cache, where :meth:`snapshot` records it.

        Raises:
            HubUnavailableError: offline or unreachable, and no listing is cached.
            HubClientError: the repository or revision does not exist.
        """
        import huggingface_hub
        from huggingface_hub import HfApi

        target = _Target(_check_text(repo_id, "repo_id"), revision)

        def fetch(local_only: bool) -> list[str]:
            if not local_only:
                api = HfApi(endpoint=self._endpoint, token=self._auth, library_name=_LIBRARY_NAME)
                return sorted(api.list_repo_files(repo_id, revision=revision))
            cached_tree = getattr(huggingface_hub, "get_cached_repo_tree", None)
            if cached_tree is None:
                raise _NoCachedListingError("this huggingface_hub cannot list files from the cache")
            return sorted(
                entry.path
                for entry in cached_tree(repo_id, revision=revision, cache_dir=self._cache_dir)
            )

        return self._run(target, fetch, lambda: self._probe_repository(repo_id, revision))

    # --- machinery --------------------------------------------------------------------

    @property
    def _auth(self) -> str | bool:
        # False (not None) stops huggingface_hub from reading HF_TOKEN or a saved login.
        return self._token or False

    def _offline_reason(self) -> str | None:
        if self._offline:
            return "offline=True"
        if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE_VALUES:
            return "HF_HUB_OFFLINE=1 is set in the environment"
        return None

    def _probe_repository(self, repo_id: str, revision: str | None) -> None:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=self._endpoint, token=self._auth, library_name=_LIBRARY_NAME)
        api.model_info(repo_id, revision=revision, timeout=self._timeout)

    def _run(
        self,
        target: _Target,
        fetch: Callable[[bool], _T],
        probe: Callable[[], object],
    ) -> _T:
        """Serve a call from the hub when it answers the probe, else from the cache.

        Args:
            target: what is being fetched, for messages.
            fetch: does the work; its argument is ``local_only`` (cache only, no network).
            probe: one cheap, bounded, retry-free request that raises when the hub is not
                usable.
        """
        offline_reason = self._offline_reason()
        pinned = target.revision is not None and _COMMIT_HASH.fullmatch(target.revision)
        if offline_reason is not None or pinned:
            # A commit hash names immutable content: a cached copy is always current.
            try:
                return fetch(True)
            except Exception as exc:
                if not self._is_cache_miss(exc):
                    raise self._translate(exc, target) from exc
                if offline_reason is not None:
                    raise self._unavailable(target, exc, offline=offline_reason) from exc
        try:
            probe()
        except Exception as exc:
            if not self._is_unreachable(exc):
                raise self._translate(exc, target) from exc
            unreachable = exc
        else:
            try:
                return fetch(False)
            except Exception as exc:
                raise self._translate(exc, target) from exc
        try:
            return fetch(True)
        except Exception as exc:
            if not self._is_cache_miss(exc):
                raise self._translate(exc, target) from exc
            raise self._unavailable(target, unreachable) from unreachable

    def _is_cache_miss(self, exc: BaseException) -> bool:
        return isinstance(exc, (*self._errors.cache_miss, _NoCachedListingError))

    def _is_unreachable(self, exc: BaseException) -> bool:
        if isinstance(exc, self._errors.unreachable):
            return True
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        return isinstance(exc, self._errors.http) and status in _UNAVAILABLE_STATUSES

    def _reason(self, exc: BaseException) -> str:
        """A one-line, token-free summary of a vendor exception."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if self._token:
            text = text.replace(self._token, "***")
        if len(text) > _REASON_LIMIT:
            text = text[: _REASON_LIMIT - 3] + "..."
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

    def _unavailable(
        self, target: _Target, cause: BaseException, *, offline: str | None = None
    ) -> HubUnavailableError:
        """The error for "cannot reach the hub (or may not) and the cache lacks ``target``"."""
        what = target.describe()
        cache = f"the local cache {self._cache_dir!r}"
        if offline is not None:
            message = (
                f"{what} is not in {cache} and the hub client is offline ({offline}); "
                f"pre-populate the cache by running once with network access (or copy a "
                f"Hugging Face cache into {self._cache_dir!r}), or turn offline mode off"
            )
        else:
            message = (
                f"the model hub at {_safe_endpoint(self._endpoint)} cannot be used "
                f"({self._reason(cause)}) and {what} is not in {cache}; check hub.endpoint "
                "in containers.yaml and the network connection, or pre-populate the cache "
                "on a machine with access"
            )
        return HubUnavailableError(message)

    def _translate(self, exc: BaseException, target: _Target) -> CrucibleError:
        """The crucible error for a vendor exception raised while serving ``target``."""
        errors = self._errors
        what = target.describe()
        endpoint = _safe_endpoint(self._endpoint)
        if isinstance(exc, CrucibleError):
            return exc
        if self._is_unreachable(exc) or self._is_cache_miss(exc):
            # A miss here means huggingface_hub itself fell back to the cache and failed.
            return self._unavailable(target, exc)
        if isinstance(exc, errors.gated):
            return HubClientError(
                f"repository {target.repo_id!r} at {endpoint} is gated; accept its terms on the "
                "hub and configure a token (hub token) from an account with access"
            )
        fetching = f" (while fetching {what})" if target.filename is not None else ""
        if isinstance(exc, errors.repo_not_found):
            return HubClientError(
                f"repository {target.repo_id!r} was not found at {endpoint}{fetching}: it does "
                "not exist, or it is private and the configured token is missing or has no "
                "access"
            )
        if isinstance(exc, errors.revision_not_found):
            return HubClientError(
                f"revision {target.revision or 'main'!r} of repository {target.repo_id!r} "
                f"was not found at {endpoint}{fetching}"
            )
        if isinstance(exc, errors.entry_not_found):
            return HubClientError(
                f"{what} was not found at {endpoint}: the repository has no such file"
            )
        if isinstance(exc, errors.invalid_argument):
            return HubClientError(f"cannot fetch {what}: {self._reason(exc)}")
        return HubClientError(f"fetching {what} from {endpoint} failed ({self._reason(exc)})")
