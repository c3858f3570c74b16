from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_train.errors import InvalidDataError
from crucible_train.types import (
    AdamParams,
    Datum,
    EncodedTextChunk,
    ImageChunk,
    ModelInput,
    SampleResponse,
    SamplingParams,
    TensorData,
    TokensWithLogprobs,
)

token_lists = st.lists(st.integers(min_value=0, max_value=200_000), max_size=50)


# --- ModelInput -------------------------------------------------------------------------


@given(token_lists)
def test_model_input_round_trips_ints(tokens):
    model_input = ModelInput.from_ints(tokens)
    assert model_input.to_ints() == tokens
    assert model_input.length == len(tokens)


@given(token_lists, token_lists)
def test_append_concatenates_and_merges_adjacent_text(first, second):
    model_input = ModelInput.from_ints(first).append(EncodedTextChunk(tokens=second))
    assert model_input.to_ints() == first + second
    assert len(model_input.chunks) == 1


def test_images_count_their_expected_tokens_and_block_to_ints():
    image = ImageChunk(data=b"\x89PNG....", format="png", expected_tokens=16)
    model_input = ModelInput.from_ints([1, 2]).append(image).append_int(7)
    assert model_input.length == 2 + 16 + 1
    assert [type(c).__name__ for c in model_input.chunks] == [
        "EncodedTextChunk",
        "ImageChunk",
        "EncodedTextChunk",
    ]
    with pytest.raises(InvalidDataError, match="chunk 1 is an image"):
        model_input.to_ints()
    assert "8 bytes" in repr(image)


def test_model_input_is_frozen_and_empty_has_length_zero():
    model_input = ModelInput.empty()
    assert model_input.length == 0
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        model_input.chunks = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("tokens", "message"),
    [([1, -1], "position 1 is -1"), ([1.5], "whole numbers"), ([True], "whole numbers")],
)
def test_bad_token_ids_are_refused(tokens, message):
    with pytest.raises(InvalidDataError, match=message):
        ModelInput.from_ints(tokens)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "gif", "expected_tokens": 4}, "valid formats: png, jpeg"),
        ({"format": "png", "expected_tokens": 0}, "must be positive"),
        ({"format": "png", "expected_tokens": 2.5}, "whole number"),
    ],
)
def test_bad_images_are_refused(kwargs, message):
    with pytest.raises(InvalidDataError, match=message):
        ImageChunk(data=b"x", **kwargs)


def test_model_input_refuses_foreign_chunks():
    with pytest.raises(InvalidDataError, match=r"chunks\[0\] is a list"):
        ModelInput(chunks=[[1, 2, 3]])  # type: ignore[list-item]


# --- TensorData -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "dtype"),
    [
        (np.arange(4, dtype=np.int32), "int64"),
        (np.arange(4, dtype=np.uint8), "int64"),
        (np.ones(3, dtype=np.float64), "float32"),
        (np.ones((2, 3), dtype=np.float16), "float32"),
    ],
)
def test_from_numpy_normalises_integer_and_float_dtypes(array, dtype):
    tensor = TensorData.from_numpy(array)
    assert tensor.dtype == dtype
    assert tensor.shape == array.shape
    np.testing.assert_array_equal(tensor.to_numpy(), array)


@pytest.mark.parametrize(
    "array",
    [np.array([True, False]), np.array([1 + 2j]), np.array(["a"]), np.array([object()])],
)
def test_unsupported_dtypes_are_refused(array):
    with pytest.raises(InvalidDataError, match="valid dtypes"):
        TensorData.from_numpy(array)


def test_direct_construction_refuses_other_dtypes_and_non_arrays():
    with pytest.raises(InvalidDataError, match="float64 is not supported"):
        TensorData(array=np.zeros(2))
    with pytest.raises(InvalidDataError, match="numpy array"):
        TensorData(array=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match="'float16' is not supported"):
        TensorData.from_list([1.0], dtype="float16")  # type: ignore[arg-type]


def test_from_list_with_shape_and_tolist_round_trip():
    tensor = TensorData.from_list([1, 2, 3, 4, 5, 6], dtype="int64", shape=[2, 3])
    assert tensor.shape == (2, 3)
    assert tensor.tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(InvalidDataError, match="do not fit shape"):
        TensorData.from_list([1, 2, 3], dtype="int64", shape=[2, 2])
    with pytest.raises(InvalidDataError, match="not float32"):
        TensorData.from_list(["x"], dtype="float32")


def test_tensor_is_read_only_and_compares_by_value():
    tensor = TensorData.from_list([1.0, 2.0], dtype="float32")
    with pytest.raises(ValueError, match="read-only"):
        tensor.to_numpy()[0] = 3.0
    assert tensor == TensorData.from_numpy(np.array([1.0, 2.0]))
    assert tensor != TensorData.from_list([1, 2], dtype="int64")
    assert repr(tensor) == "TensorData(dtype='float32', shape=[2])"


@given(st.lists(st.floats(allow_nan=False, width=32), max_size=30))
def test_float_tensors_round_trip_through_lists(values):
    tensor = TensorData.from_list(values, dtype="float32")
    assert TensorData.from_list(tensor.tolist(), dtype="float32") == tensor


# --- Datum ------------------------------------------------------------------------------


def test_datum_converts_arrays_and_checks_lengths():
    datum = Datum(
        model_input=ModelInput.from_ints([5, 6, 7]),
        loss_fn_inputs={"target_tokens": np.array([6, 7, 8]), "weights": [0.0, 1.0, 1.0]},
    )
    assert datum.loss_fn_inputs["target_tokens"].dtype == "int64"
    assert datum.loss_fn_inputs["weights"].dtype == "float32"
    assert datum == Datum(
        model_input=ModelInput.from_ints([5, 6, 7]),
        loss_fn_inputs={
            "target_tokens": TensorData.from_list([6, 7, 8], dtype="int64"),
            "weights": TensorData.from_list([0, 1, 1], dtype="float32"),
        },
    )


def test_datum_with_mismatched_lengths_names_the_key():
    with pytest.raises(InvalidDataError, match=r"\['weights'\] has shape \[2\].*3 positions"):
        Datum(
            model_input=ModelInput.from_ints([1, 2, 3]),
            loss_fn_inputs={"target_tokens": [2, 3, 4], "weights": [1.0, 1.0]},
        )


def test_datum_refuses_scalars_and_wrong_model_input():
    with pytest.raises(InvalidDataError, match="shape \\[\\]"):
        Datum(model_input=ModelInput.from_ints([1]), loss_fn_inputs={"w": np.float32(1.0)})
    with pytest.raises(InvalidDataError, match="must be a ModelInput"):
        Datum(model_input=[1, 2], loss_fn_inputs={})  # type: ignore[arg-type]


# --- sampling and optimiser parameters --------------------------------------------------


def test_tokens_with_logprobs_lengths_must_agree():
    sample = TokensWithLogprobs(tokens=[1, 2], logprobs=[-0.1, -0.2], stop_reason="stop")
    assert sample.require_logprobs() == (-0.1, -0.2)
    with pytest.raises(InvalidDataError, match="2 tokens but 1 logprobs"):
        TokensWithLogprobs(tokens=[1, 2], logprobs=[-0.1])
    with pytest.raises(InvalidDataError, match="no logprobs"):
        TokensWithLogprobs(tokens=[1]).require_logprobs()
    with pytest.raises(InvalidDataError, match="stop_reason"):
        TokensWithLogprobs(tokens=[1], stop_reason="eos")  # type: ignore[arg-type]
    assert SampleResponse(sequences=[sample]).sequences == (sample,)


def test_sampling_params_normalise_stop_and_report_every_problem():
    assert SamplingParams(stop="\n").stop == ("\n",)
    assert SamplingParams(stop=[128001, 128009]).stop == (128001, 128009)
    with pytest.raises(InvalidDataError) as caught:
        SamplingParams(max_tokens=0, temperature=-1.0, top_p=0.0, top_k=0)
    assert len(caught.value.problems) == 4
    assert "top_k is 0" in str(caught.value)


def test_adam_params_defaults_and_validation():
    params = AdamParams()
    assert (params.beta1, params.beta2, params.eps) == (0.9, 0.95, 1e-12)
    with pytest.raises(InvalidDataError) as caught:
        AdamParams(learning_rate=float("nan"), beta2=1.0, eps=0.0)
    assert [p.split(" ")[0] for p in caught.value.problems] == [
        "AdamParams.learning_rate",
        "AdamParams.beta2",
        "AdamParams.eps",
    ]
