"""RequestsHttpClient against the ``responses`` mock: status classes, Retry-After, bodies,
timeouts, connection errors, and that no credential ever reaches an error message."""

from __future__ import annotations

import email.utils
import http
import json
import pickle
import re
import threading
import time

import pytest
import requests
import responses
import urllib3
from responses import matchers

from crucible_train.adapters.requests_http.http_client import (
    RequestsHttpClient,
    parse_retry_after,
    safe_url,
)
from crucible_train.errors import (
    ConfigurationError,
    HttpClientError,
    HttpConnectionError,
    HttpRateLimitError,
    HttpTimeoutError,
    PermanentHttpError,
    RetryableHttpError,
)
from crucible_train.ports.http import HttpClient, HttpResponse

URL = "https://api.example.test/v1/runs"
TOKEN = "tok_Very_Secret_0451"


@pytest.fixture
def client():
    c = RequestsHttpClient(pool_size=2, default_timeout=5.0, user_agent="ct-test/1")
    yield c
    c.close()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


# --- success ------------------------------------------------------------------------------


def test_is_an_http_client():
    c = RequestsHttpClient()
    assert isinstance(c, HttpClient)
    assert HttpClient in type(c).__mro__
    c.close()


def test_get_returns_status_headers_and_body(client, mocked):
    mocked.get(URL, json={"ok": True}, status=200, headers={"X-Run": "7"})
    response = client.request("get", URL)
    assert isinstance(response, HttpResponse)
    assert response.status == 200
    assert response.json() == {"ok": True}
    assert response.headers["x-run"] == "7"  # case-insensitive
    assert response.headers["X-RUN"] == "7"
    assert mocked.calls[0].request.method == "GET"
    assert mocked.calls[0].request.headers["User-Agent"] == "ct-test/1"


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_every_2xx_is_success(client, mocked, status):
    mocked.post(URL, status=status, body=b"" if status == 204 else b"x")
    assert client.request("POST", URL).status == status


def test_json_body_is_compact_utf8_with_content_type(client, mocked):
    mocked.post(
        URL,
        status=200,
        match=[matchers.json_params_matcher({"name": "été", "n": [1, 2.5, None]})],
    )
    client.request("POST", URL, json={"name": "été", "n": [1, 2.5, None]})
    sent = mocked.calls[0].request
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == json.dumps(
        {"name": "été", "n": [1, 2.5, None]}, separators=(",", ":")
    ).encode("utf-8")


def test_explicit_content_type_is_kept(client, mocked):
    mocked.post(URL, status=200)
    client.request("POST", URL, json=[1], headers={"content-type": "application/vnd.x+json"})
    assert mocked.calls[0].request.headers["Content-Type"] == "application/vnd.x+json"


def test_data_body_is_sent_raw(client, mocked):
    mocked.put(URL, status=200, match=[matchers.body_matcher("raw\x00bytes")])
    client.request("PUT", URL, data=b"raw\x00bytes", headers={"Content-Type": "application/x"})
    assert mocked.calls[0].request.body == b"raw\x00bytes"


def test_params_and_headers_are_sent(client, mocked):
    mocked.get(
        URL,
        status=200,
        match=[
            matchers.query_param_matcher({"page": "2", "q": "a b"}),
            matchers.header_matcher({"X-Trace": "abc"}),
        ],
    )
    client.request("GET", URL, params={"page": "2", "q": "a b"}, headers={"X-Trace": "abc"})
    assert "page=2" in mocked.calls[0].request.url


def test_nan_in_json_body_is_refused_before_sending(client, mocked):
    with pytest.raises(PermanentHttpError, match="json body cannot be sent"):
        client.request("POST", URL, json={"x": float("nan")})
    with pytest.raises(PermanentHttpError, match="json body cannot be sent"):
        client.request("POST", URL, json={"x": object()})
    assert len(mocked.calls) == 0


def test_json_and_data_together_are_refused(client, mocked):
    with pytest.raises(PermanentHttpError, match="not both"):
        client.request("POST", URL, json={}, data=b"x")


# --- status classes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (400, PermanentHttpError, "Bad Request"),
        (401, PermanentHttpError, "Unauthorized"),
        (403, PermanentHttpError, "Forbidden"),
        (404, PermanentHttpError, "Not Found"),
        (409, PermanentHttpError, "Conflict"),
        (410, PermanentHttpError, "Gone"),
        (413, PermanentHttpError, None),
        (418, PermanentHttpError, "I'm a Teapot"),
        (422, PermanentHttpError, None),
        (501, PermanentHttpError, "Not Implemented"),
        (408, RetryableHttpError, "Request Timeout"),
        (429, HttpRateLimitError, "Too Many Requests"),
        (500, RetryableHttpError, "Internal Server Error"),
        (502, RetryableHttpError, "Bad Gateway"),
        (503, RetryableHttpError, "Service Unavailable"),
        (504, RetryableHttpError, "Gateway Timeout"),
        (599, RetryableHttpError, ""),
    ],
)
def test_status_classes(client, mocked, status, error, reason):
    if reason is None:  # the phrase changed between Python versions (RFC 9110 names)
        reason = http.HTTPStatus(status).phrase
    mocked.post(URL, status=status, json={"message": "the server says no"})
    with pytest.raises(error) as info:
        client.request("POST", URL, json={})
    exc = info.value
    assert type(exc) is error
    assert exc.status == status
    assert str(exc).startswith(f"POST https://api.example.test/v1/runs → {status} {reason}")
    assert str(exc).endswith(": the server says no")
    assert exc.body == '{"message": "the server says no"}'
    retryable = isinstance(exc, RetryableHttpError)
    assert retryable == (status in (408, 429) or (500 <= status <= 599 and status != 501))


def test_unfollowed_3xx_is_permanent(client, mocked):
    mocked.get(URL, status=304)
    with pytest.raises(PermanentHttpError, match=r"→ 304 Not Modified$"):
        client.request("GET", URL)


def test_redirects_are_followed(client, mocked):
    mocked.get(URL, status=302, headers={"Location": "https://api.example.test/v2/runs"})
    mocked.get("https://api.example.test/v2/runs", status=200, body=b"moved")
    assert client.request("GET", URL).body == b"moved"


def test_message_format_for_503(client, mocked):
    mocked.post(URL, status=503, body="upstream down\n  try later")
    with pytest.raises(RetryableHttpError) as info:
        client.request("POST", URL)
    assert str(info.value) == (
        "POST https://api.example.test/v1/runs → 503 Service Unavailable: upstream down try later"
    )


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ('{"error": {"message": "nested"}}', "nested"),
        ('{"errors": [{"message": "graphql says"}]}', "graphql says"),
        ('{"detail": "fastapi style"}', "fastapi style"),
        ("{not json", "{not json"),
        ("", None),
    ],
)
def test_server_message_extraction(client, mocked, body, shown):
    mocked.get(URL, status=400, body=body)
    with pytest.raises(PermanentHttpError) as info:
        client.request("GET", URL)
    if shown is None:
        assert str(info.value) == "GET https://api.example.test/v1/runs → 400 Bad Request"
    else:
        assert str(info.value).endswith(f"→ 400 Bad Request: {shown}")


def test_body_is_cut_to_500_characters_and_message_to_one_short_line(client, mocked):
    mocked.get(URL, status=500, body="x" * 5000)
    with pytest.raises(RetryableHttpError) as info:
        client.request("GET", URL)
    assert info.value.body == "x" * 500
    assert len(str(info.value)) < 300
    assert "\n" not in str(info.value)


def test_errors_pickle_with_their_details(client, mocked):
    mocked.get(URL, status=429, headers={"Retry-After": "7"}, body="slow down")
    with pytest.raises(HttpRateLimitError) as info:
        client.request("GET", URL)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.status, copy.retry_after, copy.body) == (429, 7.0, "slow down")
    assert str(copy) == str(info.value)


# --- Retry-After --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), (" 3 ", 3.0), ("1.5", 1.5), ("0", 0.0), ("-5", None), ("soon", None)],
)
def test_retry_after_seconds(client, mocked, header, expected):
    mocked.get(URL, status=503, headers={"Retry-After": header})
    with pytest.raises(RetryableHttpError) as info:
        client.request("GET", URL)
    assert info.value.retry_after == expected


def test_retry_after_http_date_is_seconds_from_now(client, mocked):
    later = email.utils.formatdate(time.time() + 90, usegmt=True)
    mocked.get(URL, status=429, headers={"Retry-After": later})
    with pytest.raises(HttpRateLimitError) as info:
        client.request("GET", URL)
    assert 85.0 <= info.value.retry_after <= 90.0


def test_retry_after_absent_is_none(client, mocked):
    mocked.get(URL, status=429)
    with pytest.raises(HttpRateLimitError) as info:
        client.request("GET", URL)
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("nan", None),
        ("inf", None),
        ("1e3", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: retry now
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:28:30 -0000", 30.0),
        ("Mon, 99 Foo 2020 00:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value, expected):
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT").timestamp()
    assert parse_retry_after(value, now=now) == expected


# --- transport failures ---------------------------------------------------------------------


def test_connect_timeout(client, mocked):
    mocked.get(URL, body=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(HttpTimeoutError, match=r"could not connect within 2 s") as info:
        client.request("GET", URL, timeout=2)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, RetryableHttpError)
    assert info.value.status is None
    assert isinstance(info.value.__cause__, requests.exceptions.ConnectTimeout)


def test_read_timeout(client, mocked):
    mocked.get(URL, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(HttpTimeoutError, match=r"no answer within 5 s"):
        client.request("GET", URL)  # default_timeout


def test_connection_error(client, mocked):
    mocked.get(URL, body=requests.exceptions.ConnectionError("Connection refused"))
    with pytest.raises(HttpConnectionError, match="connection failed: Connection refused") as info:
        client.request("GET", URL)
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value, RetryableHttpError)


def test_refused_connection_is_not_mistaken_for_a_timeout(client, mocked):
    # urllib3's NewConnectionError subclasses its ConnectTimeoutError (history, not meaning).
    refused = urllib3.exceptions.NewConnectionError(None, "[Errno 111] Connection refused")
    wrapped = urllib3.exceptions.MaxRetryError(None, "/v1/runs?token=x", reason=refused)
    mocked.get(URL, body=requests.exceptions.ConnectionError(wrapped))
    with pytest.raises(HttpConnectionError, match="Connection refused") as info:
        client.request("GET", URL)
    assert not isinstance(info.value, HttpTimeoutError)
    assert "token=x" not in str(info.value)


def test_urllib3_connect_timeout_inside_a_connection_error_is_a_timeout(client, mocked):
    timeout = urllib3.exceptions.ConnectTimeoutError(None, "timed out")
    wrapped = urllib3.exceptions.MaxRetryError(None, "/", reason=timeout)
    mocked.get(URL, body=requests.exceptions.ConnectionError(wrapped))
    with pytest.raises(HttpTimeoutError, match="could not connect"):
        client.request("GET", URL)


def test_dropped_body_is_a_connection_error(client, mocked):
    mocked.get(URL, body=requests.exceptions.ChunkedEncodingError("dropped"))
    with pytest.raises(HttpConnectionError):
        client.request("GET", URL)


def test_tls_failure_is_permanent(client, mocked):
    mocked.get(URL, body=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(PermanentHttpError, match="TLS failed: certificate verify failed"):
        client.request("GET", URL)


@pytest.mark.parametrize("url", ["not a url", "ftp://example.test/x", "http://"])
def test_unsendable_urls_are_permanent(client, url):
    with pytest.raises(PermanentHttpError, match="invalid request"):
        client.request("GET", url)


def test_unmatched_mock_request_is_a_typed_error(client, mocked):
    # responses raises requests.ConnectionError for unknown URLs: still typed.
    with pytest.raises(HttpConnectionError):
        client.request("GET", "https://other.example.test/")


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True])
def test_invalid_timeouts_are_refused(client, timeout):
    with pytest.raises(PermanentHttpError, match="timeout"):
        client.request("GET", URL, timeout=timeout)


# --- secrets ------------------------------------------------------------------------------


def test_no_credentials_in_messages(client, mocked):
    echoed = f"bad token {TOKEN}; user alice:pw_Secret_91; key {TOKEN}x"
    secret_url = f"https://alice:pw_Secret_91@api.example.test/v1/runs?api_key={TOKEN}"
    mocked.post(re.compile(r"https://.*api\.example\.test/v1/runs.*"), status=401, body=echoed)
    with pytest.raises(PermanentHttpError) as info:
        client.request(
            "POST",
            secret_url,
            headers={"Authorization": f"Bearer {TOKEN}", "X-Neptune-Api-Token": TOKEN},
            params={"token": "param_Secret_77"},
        )
    text = str(info.value) + repr(info.value) + (info.value.body or "")
    for secret in (TOKEN, "pw_Secret_91", "param_Secret_77", "Bearer"):
        assert secret not in text.replace("Bearer ***", "***")
    assert str(info.value).startswith("POST https://api.example.test/v1/runs → 401 Unauthorized")
    assert "alice" not in str(info.value).split("→")[0]


def test_basic_auth_credentials_are_scrubbed(client, mocked):
    import base64

    basic = base64.b64encode(b"api:basic_Secret_42").decode()
    mocked.get(URL, status=403, body=f"echo: Basic {basic} / basic_Secret_42")
    with pytest.raises(PermanentHttpError) as info:
        client.request("GET", URL, headers={"Authorization": f"Basic {basic}"})
    assert basic not in str(info.value)
    assert "basic_Secret_42" not in str(info.value)
    assert "basic_Secret_42" not in (info.value.body or "")


def test_transport_errors_name_no_query_or_userinfo(client, mocked):
    secret_url = f"https://bob:pw_Secret_12@api.example.test/v1/runs?token={TOKEN}"
    mocked.get(
        re.compile(r"https://.*api\.example\.test/v1/runs.*"),
        body=requests.exceptions.ConnectionError(f"failed for /v1/runs?token={TOKEN}"),
    )
    with pytest.raises(HttpConnectionError) as info:
        client.request("GET", secret_url)
    assert TOKEN not in str(info.value)
    assert "pw_Secret_12" not in str(info.value)
    assert str(info.value).startswith("GET https://api.example.test/v1/runs: ")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@host:8443/a/b?token=x#frag", "https://host:8443/a/b"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("https://host", "https://host"),
        ("garbage", "garbage"),
    ],
)
def test_safe_url(url, shown):
    assert safe_url(url) == shown


# --- lifecycle, configuration, threads ----------------------------------------------------------


def test_close_is_idempotent_and_refuses_later_requests(mocked):
    c = RequestsHttpClient()
    c.close()
    c.close()
    with pytest.raises(PermanentHttpError, match="closed"):
        c.request("GET", URL)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pool_size": 0},
        {"pool_size": True},
        {"default_timeout": 0},
        {"default_timeout": float("inf")},
        {"user_agent": " "},
    ],
)
def test_invalid_constructor_arguments(kwargs):
    with pytest.raises(ConfigurationError, match="RequestsHttpClient"):
        RequestsHttpClient(**kwargs)


def test_pool_is_sized(client):
    adapter = client._session.get_adapter("https://x")
    assert adapter._pool_connections == 2
    assert adapter._pool_maxsize == 2
    assert adapter.max_retries.total == 0


def test_cookies_are_not_kept(client, mocked):
    mocked.get(URL, status=200, headers={"Set-Cookie": "sid=abc; Path=/"})
    client.request("GET", URL)
    assert len(client._session.cookies) == 0


def test_concurrent_requests_share_the_client(client, mocked):
    mocked.get(URL, json={"ok": 1})
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert client.request("GET", URL).json() == {"ok": 1}
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(mocked.calls) == 160


def test_every_error_is_an_http_client_error(client, mocked):
    mocked.get(URL, body=RuntimeError("a bug in a mock"))
    # Only request-library failures are translated; a programming error propagates as is.
    with pytest.raises(RuntimeError):
        client.request("GET", URL)
    mocked.get(URL, body=requests.exceptions.RequestException("odd"))
    with pytest.raises(HttpClientError):
        client.request("GET", URL)
