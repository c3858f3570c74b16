from __future__ import annotations

import inspect
import pickle

import pytest

from crucible_train import errors
from crucible_train.errors import (
    BlobNotFoundError,
    ConfigurationError,
    CrucibleError,
    HttpRateLimitError,
    HttpTimeoutError,
    PermanentHttpError,
    PortError,
    RetryableHttpError,
)

ALL_ERRORS = [getattr(errors, name) for name in errors.__all__]


def test_every_class_is_exported_documented_and_part_of_the_hierarchy():
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
    }
    assert defined == set(errors.__all__)
    for cls in ALL_ERRORS:
        assert issubclass(cls, CrucibleError)
        assert (cls.__doc__ or "").strip()


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_every_error_pickles_with_its_details(cls):
    error = cls("first problem", "second problem")
    error.status = 503
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is cls
    assert restored.problems == ("first problem", "second problem")
    assert restored.status == 503
    assert str(restored) == "first problem\nsecond problem"


def test_categories_also_are_the_standard_exceptions_they_replace():
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(PortError, RuntimeError)
    assert issubclass(BlobNotFoundError, KeyError)
    assert issubclass(HttpTimeoutError, TimeoutError)
    assert issubclass(HttpRateLimitError, RetryableHttpError)
    assert not issubclass(PermanentHttpError, RetryableHttpError)


def test_key_error_leaves_print_plain_messages():
    assert str(BlobNotFoundError("no blob 'a/b'")) == "no blob 'a/b'"


@pytest.mark.parametrize(
    ("cls", "standard"),
    [
        (errors.BackendConnectionError, ConnectionError),
        (errors.BackendTimeoutError, TimeoutError),
        (errors.BackendAuthenticationError, None),
        (errors.BackendRequestError, None),
    ],
)
def test_backend_errors_serve_both_ports_and_pickle_their_status(cls, standard):
    # One Tinker adapter serves training and sampling: the core catches either port's error.
    assert issubclass(cls, errors.TrainingClientError)
    assert issubclass(cls, errors.SamplingClientError)
    if standard is not None:
        assert issubclass(cls, standard)
    error = cls("the server said no")
    assert error.status is None
    error.status = 422
    restored = pickle.loads(pickle.dumps(error))
    assert (type(restored), restored.status, str(restored)) == (cls, 422, "the server said no")
