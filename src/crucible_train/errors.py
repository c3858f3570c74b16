"""The one exception hierarchy of crucible-train.

Every error the library raises on purpose is a :class:`CrucibleError`. Categories also
inherit the standard exception they replace, so existing ``except ValueError`` or
``except KeyError`` code keeps working:

* :class:`ConfigurationError` (``ValueError``): the user asked for something that cannot
  work (bad config, bad argument, missing secret, missing optional package). Fatal; fix
  the input and run again.
* :class:`InvalidDataError` (``ValueError``): a value object (datum, tensor, sampling
  parameters) was built from data that breaks its invariants.
* :class:`PortError` (``RuntimeError``): an adapter failed while doing its job. One
  subclass per port; leaves where callers branch (retryable vs permanent HTTP errors,
  blob not found, malformed dataset line).

Rules that keep these exceptions useful across processes and in logs:

* no class takes custom ``__init__`` parameters, so every instance pickles;
* extra details (an HTTP status, a ``Retry-After`` delay) are plain instance attributes
  set after construction; they survive pickling through the instance ``__dict__``;
* an error built from several messages (``ConfigurationError("a", "b")``) prints one
  problem per line, which is how configuration validation reports everything at once;
* messages never contain secrets.
"""

from __future__ import annotations

__all__ = [
    "AdapterUnavailableError",
    "BackendAuthenticationError",
    "BackendConnectionError",
    "BackendError",
    "BackendNotConfiguredError",
    "BackendRequestError",
    "BackendTimeoutError",
    "BlobNotFoundError",
    "BlobPathError",
    "BlobStoreError",
    "ConfigurationError",
    "CrucibleError",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DatasetStoreError",
    "EmbeddingClientError",
    "HttpClientError",
    "HttpConnectionError",
    "HttpRateLimitError",
    "HttpTimeoutError",
    "HubClientError",
    "HubUnavailableError",
    "InvalidDataError",
    "LLMClientError",
    "MetricsSinkError",
    "MissingSecretError",
    "ModelInfoError",
    "PermanentHttpError",
    "PortError",
    "RetryableHttpError",
    "RewardError",
    "SamplingClientError",
    "TokenizerError",
    "TrainingClientError",
    "VectorStoreError",
]


class CrucibleError(Exception):
    """Base of every error crucible-train raises on purpose.

    Several messages may be given; they print one per line. ``problems`` returns them.
    """

    @property
    def problems(self) -> tuple[str, ...]:
        """Each message this error was built from, as strings."""
        return tuple(str(arg) for arg in self.args)

    def __str__(self) -> str:
        # KeyError (a base of some leaves) would otherwise quote the message.
        return "\n".join(self.problems)


# --- configuration ------------------------------------------------------------------


class ConfigurationError(CrucibleError, ValueError):
    """The configuration or an argument cannot work as given.

    Raised at start-up (``containers.yaml`` validation, CLI overrides) or when a function
    gets an argument outside its domain (an unknown schedule name, negative warmup).
    Fatal: the message says which key or argument is wrong and what would be valid.
    """


class AdapterUnavailableError(ConfigurationError):
    """An adapter was selected whose optional package is not installed.

    The message names the extra to install (``pip install 'crucible-train[local]'``) and
    the ``noop`` fallback. Fatal until the package is installed.
    """


class MissingSecretError(ConfigurationError):
    """A secret an adapter needs is not set; the message names the environment variable."""


class BackendNotConfiguredError(ConfigurationError):
    """A ``noop`` adapter was asked to do work that has no meaningful no-op.

    Raised by the noop training, sampling, tokenizer, LLM and embedding adapters; the
    message names the ``containers.yaml`` key to set (``training.backend`` ...).
    """


# --- data -----------------------------------------------------------------------------


class InvalidDataError(CrucibleError, ValueError):
    """A value object was built from data that breaks its invariants.

    Examples: a datum whose loss inputs disagree in length with its model input, a
    tensor with an unsupported dtype, sampling parameters out of range. Fatal for that
    value; the message names the field and what was expected.
    """


# --- ports ----------------------------------------------------------------------------


class PortError(CrucibleError, RuntimeError):
    """An adapter failed while carrying out a port call. Subclassed once per port."""


class TrainingClientError(PortError):
    """The training backend failed (forward/backward, optimizer step, state save/load)."""


class SamplingClientError(PortError):
    """The sampling backend failed to sample or to score a sequence."""


class BackendError(TrainingClientError, SamplingClientError):
    """A remote training/sampling service (Tinker) failed; base of the typed leaves below.

    One adapter serves both the training and the sampling port, so every leaf is both a
    :class:`TrainingClientError` and a :class:`SamplingClientError`. The message carries
    the server's own words and never the API key. Attribute ``status``: the HTTP status
    code when the server answered, else ``None``.
    """

    status: int | None = None


class BackendConnectionError(BackendError, ConnectionError):
    """The service could not be reached, after the SDK's own retries. Retry later."""


class BackendAuthenticationError(BackendError):
    """The API key was rejected (401/403) or refused by the SDK before sending (bad format).

    Fatal until the key (``TINKER_API_KEY``) is fixed.
    """


class BackendTimeoutError(BackendError, TimeoutError):
    """No result arrived within the configured wait (``future_timeout_s``) or request timeout."""


class BackendRequestError(BackendError):
    """The service rejected one request (a 4xx such as 422 for an unsupported loss).

    Retrying the same request will not help; ``status`` holds the HTTP status when known.
    """


class TokenizerError(PortError):
    """A tokenizer could not be loaded, or could not encode or decode its input."""


class ModelInfoError(PortError):
    """Model metadata could not be read (missing config, unknown architecture)."""


class MetricsSinkError(PortError):
    """A metrics sink could not record or deliver metrics."""


class EmbeddingClientError(PortError):
    """The embedding backend failed to embed a batch of texts."""


class LLMClientError(PortError):
    """The LLM backend failed to produce a completion."""


class RewardError(CrucibleError, RuntimeError):
    """Too many rows of a batch failed one reward component (raised, returned NaN or a
    non-number); the message names the component and its first failure."""


class VectorStoreError(PortError):
    """The vector store rejected an upsert or query (dimension mismatch, bad id)."""


class HttpClientError(PortError):
    """An HTTP request failed.

    Attributes (``None`` when unknown): ``status`` (the HTTP status code),
    ``retry_after`` (seconds the server asked us to wait), ``body`` (the start of the
    server's answer, for the error message).
    """

    status: int | None = None
    retry_after: float | None = None
    body: str | None = None


class RetryableHttpError(HttpClientError):
    """A transient failure: 429, 5xx other than 501, timeouts, dropped connections.

    Safe to retry after a back-off (honour ``retry_after`` when set).
    """


class HttpRateLimitError(RetryableHttpError):
    """The server answered 429 Too Many Requests; ``retry_after`` says when to retry."""


class HttpTimeoutError(RetryableHttpError, TimeoutError):
    """No answer arrived within the request's timeout."""


class HttpConnectionError(RetryableHttpError, ConnectionError):
    """The connection could not be made or was dropped before an answer arrived."""


class PermanentHttpError(HttpClientError):
    """A failure that retrying will not fix: 400, 401, 403, 404, 409, 410, 413, 422, 501.

    Report once with the server's message and stop sending the same request.
    """


class BlobStoreError(PortError):
    """The blob store could not read, write, list or delete a blob."""


class BlobNotFoundError(BlobStoreError, KeyError):
    """No blob exists under the requested key."""


class BlobPathError(BlobStoreError, ValueError):
    """A blob key is not a safe relative path (absolute, ``..``, empty segment)."""


class DatasetStoreError(PortError):
    """A dataset could not be opened or read."""


class DatasetNotFoundError(DatasetStoreError, FileNotFoundError):
    """The dataset file does not exist; the message gives the resolved path."""


class DatasetFormatError(DatasetStoreError, ValueError):
    """A dataset record is malformed; the message names the file and the line number."""


class HubClientError(PortError):
    """A model hub download or listing failed."""


class HubUnavailableError(HubClientError, ConnectionError):
    """The hub cannot be reached (offline machine, ``HF_HUB_OFFLINE=1``, DNS failure)."""
