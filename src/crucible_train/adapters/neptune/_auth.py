"""Neptune 1.x authentication (adapter layer, HTTP port only): API token and OAuth session.

The API token is ``base64(JSON)`` with the server address inside; it is sent whole as
``X-Neptune-Api-Token`` on two calls only (client config and token exchange). Every later
call carries a short-lived OAuth access token (a JWT) as ``Authorization: Bearer``, which
is refreshed at ``{iss}/protocol/openid-connect/token`` with the JWT's ``azp`` as client
id. See ``PROTOCOLS.md`` B.1-B.2 in the wire reference.

No secret (API token, access token, refresh token) ever appears in a message, a ``repr``
or a file written here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import attrs

from crucible_train.errors import (
    ConfigurationError,
    HttpClientError,
    MissingSecretError,
    PermanentHttpError,
)
from crucible_train.ports.http import HttpClient, HttpResponse

__all__ = [
    "TOKEN_ENV_VAR",
    "NeptuneCredentials",
    "OAuthSession",
    "is_unauthorized",
    "json_object",
    "parse_api_token",
    "parse_project",
    "token_rejected",
]

TOKEN_ENV_VAR: Final = "NEPTUNE_API_TOKEN"
"""The environment variable the API token comes from, named in error messages."""

REFRESH_MARGIN_S: Final = 30.0
"""Refresh the access token when it has less than this many seconds left (the SDK's rule)."""

# Headers every call carries; the 1.x SDK sends X-Neptune-LegacyClient: false everywhere.
BASE_HEADERS: Final[Mapping[str, str]] = {"X-Neptune-LegacyClient": "false"}

_PROJECT: Final = re.compile(r"[^/\s]+/[^/\s]+")
_PROJECT_EXAMPLE: Final = "'my-workspace/llm-finetuning'"


@attrs.frozen(kw_only=True)
class NeptuneCredentials:
    """A parsed API token: the whole token (sent as a header) and the API base URL.

    ``repr`` and ``str`` hide the token.
    """

    api_token: str = attrs.field(repr=False)
    api_url: str

    def __repr__(self) -> str:
        return f"NeptuneCredentials(api_url={self.api_url!r}, api_token=<hidden>)"

    __str__ = __repr__


def _check_http_url(url: str, where: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # The address is not secret (it is the server's URL), but it may come from the
        # token, so only its scheme is quoted.
        raise ConfigurationError(
            f"{where} must be an http(s) URL such as 'https://neptune.example.com', "
            f"got a value with scheme {parts.scheme or '(none)'!r}"
        )
    return url.strip().rstrip("/")


def _decode_base64(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        # Some tools hand out the URL-safe alphabet; accept that too.
        return base64.b64decode(padded, altchars=b"-_", validate=True)


def parse_api_token(api_token: str | None, *, api_url: str | None = None) -> NeptuneCredentials:
    """Parse a Neptune API token and work out the API base URL.

    The token is ``base64`` of a JSON object with ``api_address``, ``api_url`` and
    ``api_key``. The base URL is ``api_url`` when the token has it, else ``api_address``;
    the ``api_url`` argument overrides both (a self-hosted server reached under another
    name). There is no default host: the hosted service shut down in March 2026.

    Args:
        api_token: the whole token, as found in ``NEPTUNE_API_TOKEN``.
        api_url: optional override of the address inside the token.

    Returns:
        The credentials; their ``repr`` hides the token.

    Raises:
        MissingSecretError: the token is missing or empty.
        ConfigurationError: the token is malformed (the message says how, never what it
            contains) or the address is not an http(s) URL.
    """
    if api_token is None or not isinstance(api_token, str) or not api_token.strip():
        raise MissingSecretError(
            f"the Neptune API token is not set: export {TOKEN_ENV_VAR}=<token> (copy it from "
            "your Neptune server's user menu, 'Get your API token')"
        )
    token = api_token.strip()
    try:
        raw = _decode_base64(token)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            f"the Neptune API token in {TOKEN_ENV_VAR} is not valid base64; copy the whole "
            "token again (it is one line with no spaces)"
        ) from None
    try:
        decoded: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ConfigurationError(
            f"the Neptune API token in {TOKEN_ENV_VAR} decodes from base64 but is not JSON; "
            "it is not a Neptune API token"
        ) from None
    if not isinstance(decoded, dict):
        raise ConfigurationError(
            f"the Neptune API token in {TOKEN_ENV_VAR} decodes to JSON that is not an object; "
            "it is not a Neptune API token"
        )
    if api_url is not None and str(api_url).strip():
        return NeptuneCredentials(
            api_token=token, api_url=_check_http_url(str(api_url), "the Neptune api_url")
        )
    for field in ("api_url", "api_address"):
        address = decoded.get(field)
        if isinstance(address, str) and address.strip():
            return NeptuneCredentials(
                api_token=token,
                api_url=_check_http_url(address, f"the {field} inside {TOKEN_ENV_VAR}"),
            )
    raise ConfigurationError(
        f"the Neptune API token in {TOKEN_ENV_VAR} has no server address (neither 'api_url' "
        "nor 'api_address'); pass api_url='https://<your-neptune-server>' (the hosted "
        "app.neptune.ai service shut down in March 2026, so there is no default)"
    )


def parse_project(project: str | None) -> tuple[str, str]:
    """Split ``'workspace/project'`` into its two names.

    Raises:
        ConfigurationError: the value is not exactly two non-empty names joined by ``/``.
    """
    if not isinstance(project, str) or not _PROJECT.fullmatch(project.strip()):
        raise ConfigurationError(
            f"the Neptune project must be 'workspace/project', for example {_PROJECT_EXAMPLE}; "
            f"got {project!r}"
        )
    workspace, _, name = project.strip().partition("/")
    return workspace, name


def _jwt_claims(jwt: object) -> dict[str, Any]:
    """The claims of a JWT, decoded without verifying its signature (as the SDK does).

    The token is ours to send, not to check: the server that issued it verifies it.
    """
    if not isinstance(jwt, str) or jwt.count(".") != 2:
        raise PermanentHttpError(
            "the Neptune server returned an access token that is not a JWT; is the address "
            "a Neptune server?"
        )
    payload = jwt.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        raise PermanentHttpError(
            "the Neptune server returned an access token whose claims cannot be decoded"
        ) from None
    if not isinstance(claims, dict):
        raise PermanentHttpError("the Neptune server returned an access token without claims")
    return claims


def json_object(response: HttpResponse, what: str) -> dict[str, Any]:
    """The JSON object a Neptune server answered ``what`` with.

    Raises:
        PermanentHttpError: the body is not JSON, or not a JSON object.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PermanentHttpError(f"the Neptune server answered {what} with something not JSON")
    return body


class OAuthSession:
    """Holds the OAuth tokens of one client and keeps the access token fresh. Thread-safe.

    Args:
        http: the HTTP client.
        credentials: the parsed API token.
        timeout: seconds per request.
        clock: wall-clock seconds (JWT ``exp`` is wall-clock); tests pass a fake.
    """

    def __init__(
        self,
        *,
        http: HttpClient,
        credentials: NeptuneCredentials,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._credentials = credentials
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        self._expires_at = 0.0
        self._token_endpoint: str | None = None
        self._client_id: str | None = None
        self.username: str | None = None

    def __repr__(self) -> str:
        return f"OAuthSession(api_url={self._credentials.api_url!r}, tokens=<hidden>)"

    def api_token_get(
        self, api_url: str, path: str, what: str, *, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``GET {api_url}{path}`` with the API token itself (client config, token exchange).

        Args:
            api_url: the API base URL.
            path: the endpoint, from ``/api/...``.
            what: the call as messages name it (``"the token exchange"``).
            params: query parameters.

        Returns:
            The JSON object the server answered.

        Raises:
            PermanentHttpError: 401/403 (the token was rejected; the message says so),
                another refusal, or an answer that is not a JSON object.
            RetryableHttpError: the server is unreachable or busy.
        """
        headers = {**BASE_HEADERS, "X-Neptune-Api-Token": self._credentials.api_token}
        try:
            response = self._http.request(
                "GET", f"{api_url}{path}", headers=headers, params=params, timeout=self._timeout
            )
        except PermanentHttpError as exc:
            rejected = token_rejected(exc, api_url, what)
            if rejected is exc:
                raise
            raise rejected from None
        return json_object(response, what)

    def exchange(self, api_url: str) -> None:
        """Exchange the API token for OAuth tokens (``GET .../authorization/oauth-token``).

        Raises:
            PermanentHttpError: 401/403 (the token was rejected; the message says so) or a
                malformed answer.
            RetryableHttpError: the server is unreachable or busy.
        """
        body = self.api_token_get(
            api_url, "/api/backend/v1/authorization/oauth-token", "the token exchange"
        )
        with self._lock:
            self._install(body.get("accessToken"), body.get("refreshToken"), None)
            username = body.get("username")
            self.username = username if isinstance(username, str) else None

    def _install(self, access: object, refresh: object, expires_in: object) -> None:
        claims = _jwt_claims(access)
        issuer, client_id = claims.get("iss"), claims.get("azp")
        if not isinstance(refresh, str) or not refresh:
            raise PermanentHttpError("the Neptune server returned no refresh token")
        if not isinstance(issuer, str) or not issuer.startswith(("http://", "https://")):
            raise PermanentHttpError("the Neptune access token has no usable 'iss' claim")
        if not isinstance(client_id, str) or not client_id:
            raise PermanentHttpError("the Neptune access token has no 'azp' claim")
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            expires_at = float(exp)
        elif isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            expires_at = self._clock() + float(expires_in)
        else:
            expires_at = self._clock()  # unknown lifetime: refresh before the next call
        assert isinstance(access, str)  # checked by _jwt_claims
        self._access_token = access
        self._refresh_token = refresh
        self._expires_at = expires_at
        self._token_endpoint = f"{issuer.rstrip('/')}/protocol/openid-connect/token"
        self._client_id = client_id

    @property
    def has_tokens(self) -> bool:
        """Whether :meth:`exchange` has succeeded."""
        with self._lock:
            return self._access_token is not None

    def _refresh_locked(self) -> None:
        assert self._token_endpoint is not None
        assert self._client_id is not None
        assert self._refresh_token is not None
        form = urlencode(
            {
                "grant_type": "refresh_token",
                "client_id": self._client_id,
                "refresh_token": self._refresh_token,
            }
        )
        response = self._http.request(
            "POST",
            self._token_endpoint,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            data=form.encode("ascii"),
            timeout=self._timeout,
        )
        body = json_object(response, "the token refresh")
        # Keycloak may rotate the refresh token or not; keep the old one when absent.
        refresh = body.get("refresh_token") or self._refresh_token
        self._install(body.get("access_token"), refresh, body.get("expires_in"))

    def bearer_headers(self, api_url: str) -> dict[str, str]:
        """Headers with a fresh ``Authorization: Bearer`` (refreshing if < 30 s are left).

        Raises:
            HttpClientError: the refresh (or the re-exchange it falls back to) failed.
        """
        with self._lock:
            if self._access_token is None:
                need_exchange = True
            else:
                need_exchange = False
                if self._expires_at - self._clock() < REFRESH_MARGIN_S:
                    self._refresh_or_flag()
                    need_exchange = self._access_token is None
        if need_exchange:
            self.exchange(api_url)
        with self._lock:
            assert self._access_token is not None
            return {**BASE_HEADERS, "Authorization": f"Bearer {self._access_token}"}

    def _refresh_or_flag(self) -> None:
        """Refresh; when the refresh token itself is refused, forget the tokens instead.

        Forgetting them makes the next caller exchange the API token again, which is how a
        long-dead process (or a ``logs sync`` days later) gets a session back.
        """
        try:
            self._refresh_locked()
        except PermanentHttpError as exc:
            if exc.status in (400, 401, 403):
                self._access_token = None
                self._refresh_token = None
                return
            raise

    def on_unauthorized(self, api_url: str) -> None:
        """React to a 401 on a Bearer call: refresh once (re-exchange if that is refused).

        Raises:
            HttpClientError: neither the refresh nor the re-exchange worked.
        """
        with self._lock:
            if self._refresh_token is not None:
                self._refresh_or_flag()
            needs_exchange = self._access_token is None
        if needs_exchange:
            self.exchange(api_url)


def token_rejected(exc: PermanentHttpError, api_url: str, call: str) -> PermanentHttpError:
    """``exc`` itself, or for a 401/403 an error saying plainly that the token was refused."""
    if exc.status not in (401, 403):
        return exc
    error = PermanentHttpError(
        f"the Neptune server at {api_url} rejected the API token (HTTP {exc.status} on "
        f"{call}); check {TOKEN_ENV_VAR} and that it belongs to this server"
    )
    error.status = exc.status
    return error


def is_unauthorized(exc: HttpClientError) -> bool:
    """Whether an HTTP error is a 401 (expired or revoked access token)."""
    return isinstance(exc, PermanentHttpError) and exc.status == 401
