"""What a transport's errors mean (``delivery/transport.py``)."""

from __future__ import annotations

import pytest

from crucible_train.adapters.delivery.transport import describe_error, stops_delivery
from crucible_train.errors import PermanentHttpError, RetryableHttpError

from delivery_fakes import http_error


@pytest.mark.parametrize(
    ("status", "stops"),
    [
        (401, True),
        (403, True),
        (404, True),
        (501, True),
        (400, False),
        (409, False),
        (413, False),
        (422, False),
        (None, False),
    ],
)
def test_only_errors_that_would_fail_forever_stop_delivery(status, stops):
    assert stops_delivery(http_error(PermanentHttpError, status)) is stops


def test_an_error_that_is_not_the_service_talking_stops_delivery():
    assert stops_delivery(ValueError("a bug")) is True
    assert stops_delivery(KeyError("x")) is True


def test_describe_error_adds_the_status_once():
    assert describe_error(http_error(PermanentHttpError, 400, "bad value")) == "HTTP 400: bad value"
    assert describe_error(http_error(RetryableHttpError, 503, "503 busy")) == "503 busy"
    assert describe_error(RuntimeError()) == "RuntimeError"
