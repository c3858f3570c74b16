"""The huggingface tokenizer adapter against the official vocabularies and renderings.

The reference token ids in ``/work/shared/reference/chat_templates/rendered/<family>.json``
were produced by ``transformers`` from the official chat templates and tokenizers; matching
them proves the adapter reproduces the official tokenization.
"""

from __future__ import annotations

import pathlib

import pytest

from crucible_train.errors import ConfigurationError, TokenizerError

from vocab_paths import deepseek_v3_dir, llama3_dir, qwen3_dir, reference_renderings

# DeepSeek spells its specials with FULLWIDTH VERTICAL LINE (U+FF5C) and U+2581.
DS_BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
DS_EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"


def _hf(directory: pathlib.Path):
    pytest.importorskip("tokenizers")
    from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer

    return HuggingFaceTokenizer(path=str(directory))


@pytest.fixture(scope="module")
def llama3():
    return _hf(llama3_dir())


@pytest.fixture(scope="module")
def qwen3():
    return _hf(qwen3_dir())


@pytest.fixture(scope="module")
def deepseek_v3():
    return _hf(deepseek_v3_dir())


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("<|begin_of_text|>", 128000),
        ("<|start_header_id|>", 128006),
        ("<|end_header_id|>", 128007),
        ("<|eot_id|>", 128009),
    ],
)
def test_llama3_special_ids(llama3, text, token):
    assert llama3.special_tokens[text] == token
    assert llama3.encode(text) == [token]


def test_llama3_eos_and_vocab(llama3):
    # This package ships the base-model tokenizer_config: eos_token <|end_of_text|>.
    assert llama3.eos_token_id == 128001
    assert llama3.vocab_size >= 128256


@pytest.mark.parametrize(
    ("text", "token"), [("<|im_start|>", 151644), ("<|im_end|>", 151645), ("<think>", 151667)]
)
def test_qwen3_added_token_ids(qwen3, text, token):
    assert qwen3.encode(text) == [token]


def test_qwen3_specials_and_eos(qwen3):
    assert qwen3.special_tokens["<|im_start|>"] == 151644
    assert qwen3.special_tokens["<|endoftext|>"] == 151643
    # <think> is an added token that tokenizer.json does not flag special.
    assert "<think>" not in qwen3.special_tokens
    assert qwen3.eos_token_id == 151645
    assert qwen3.vocab_size == 151669


@pytest.mark.parametrize(("text", "token"), [(DS_BOS, 0), ("<think>", 128798)])
def test_deepseek_v3_ids(deepseek_v3, text, token):
    assert deepseek_v3.encode(text) == [token]


def test_deepseek_v3_bos_is_special(deepseek_v3):
    assert deepseek_v3.special_tokens[DS_BOS] == 0
    assert deepseek_v3.eos_token_id == deepseek_v3.special_tokens[DS_EOS]


@pytest.mark.parametrize("case", reference_renderings("llama3_3"))
def test_llama3_reproduces_reference_ids(llama3, case):
    assert llama3.encode(case["text"]) == case["token_ids"]
    assert llama3.decode(case["token_ids"]) == case["text"]


@pytest.mark.parametrize("case", reference_renderings("qwen3"))
def test_qwen3_reproduces_reference_ids(qwen3, case):
    assert qwen3.encode(case["text"]) == case["token_ids"]
    assert qwen3.decode(case["token_ids"]) == case["text"]


@pytest.mark.parametrize("case", reference_renderings("deepseek_v3_0324"))
def test_deepseek_v3_reproduces_reference_ids(deepseek_v3, case):
    assert deepseek_v3.encode(case["text"]) == case["token_ids"]
    assert deepseek_v3.decode(case["token_ids"]) == case["text"]


def test_hf_user_text_cannot_forge_specials(qwen3):
    tokens = qwen3.encode("hi<|im_end|>", allow_special=False)
    assert 151645 not in tokens
    assert qwen3.decode(tokens) == "hi<|im_end|>"


def test_hf_missing_file_is_a_configuration_error(tmp_path):
    pytest.importorskip("tokenizers")
    from crucible_train.adapters.hf_tokenizers.tokenizer import HuggingFaceTokenizer

    with pytest.raises(ConfigurationError, match=r"tokenizer\.json"):
        HuggingFaceTokenizer(path=str(tmp_path))


def test_hf_accepts_the_file_path(qwen3):
    clone = _hf(qwen3_dir() / "tokenizer.json")
    assert clone.encode("hello") == qwen3.encode("hello")


def test_hf_out_of_range_raises(qwen3):
    with pytest.raises(TokenizerError):
        qwen3.decode([qwen3.vocab_size])
