"""Tokenizer adapters against the official vocabularies and reference renderings.

The reference token ids in ``/work/shared/reference/chat_templates/rendered/<family>.json``
were produced by ``transformers`` from the official chat templates and tokenizers; matching
them proves each adapter reproduces the official tokenization.
"""

from __future__ import annotations

import json
import pathlib
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crucible_train.adapters.byte_level.tokenizer import ByteLevelTokenizer
from crucible_train.errors import ConfigurationError, TokenizerError

from vocab_paths import deepseek_v3_dir, llama3_dir, o200k_base_file, qwen3_dir

# DeepSeek spells its specials with FULLWIDTH VERTICAL LINE (U+FF5C) and U+2581.
DS_BOS = "<\uff5cbegin\u2581of\u2581sentence\uff5c>"
DS_EOS = "<\uff5cend\u2581of\u2581sentence\uff5c>"
RENDERED = pathlib.Path("/work/shared/reference/chat_templates/rendered")


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


@pytest.fixture(scope="module")
def harmony():
    pytest.importorskip("tiktoken")
    from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer

    return TiktokenFileTokenizer(path=str(o200k_base_file()), preset="o200k_harmony")


def _cases(family: str) -> list:
    path = RENDERED / f"{family}.json"
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{path} not available"))]
    results = json.loads(path.read_text(encoding="utf-8"))["results"]
    return [
        pytest.param(r, id=f"{r['case']}-{r['variant']}")
        for r in results
        if r.get("ok") and r.get("token_ids")
    ][:4]


# --- official special-token ids ----------------------------------------------------------


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


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("<|startoftext|>", 199998),
        ("<|endoftext|>", 199999),
        ("<|return|>", 200002),
        ("<|constrain|>", 200003),
        ("<|channel|>", 200005),
        ("<|start|>", 200006),
        ("<|end|>", 200007),
        ("<|message|>", 200008),
        ("<|call|>", 200012),
    ],
)
def test_o200k_harmony_ids(harmony, text, token):
    assert harmony.special_tokens[text] == token
    assert harmony.encode(text) == [token]


def test_o200k_harmony_matches_tiktoken_table(harmony, monkeypatch):
    openai_public = pytest.importorskip("tiktoken_ext.openai_public")
    # Skip the download: only tiktoken's special-token table is compared.
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *_a, **_k: {})
    assert dict(harmony.special_tokens) == openai_public.o200k_harmony()["special_tokens"]
    assert harmony.vocab_size == 201088
    assert harmony.eos_token_id == 200002


# --- reference renderings ----------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("llama3_3"))
def test_llama3_reproduces_reference_ids(llama3, case):
    assert llama3.encode(case["text"]) == case["token_ids"]
    assert llama3.decode(case["token_ids"]) == case["text"]


@pytest.mark.parametrize("case", _cases("qwen3"))
def test_qwen3_reproduces_reference_ids(qwen3, case):
    assert qwen3.encode(case["text"]) == case["token_ids"]
    assert qwen3.decode(case["token_ids"]) == case["text"]


@pytest.mark.parametrize("case", _cases("deepseek_v3_0324"))
def test_deepseek_v3_reproduces_reference_ids(deepseek_v3, case):
    assert deepseek_v3.encode(case["text"]) == case["token_ids"]
    assert deepseek_v3.decode(case["token_ids"]) == case["text"]


@pytest.mark.parametrize("case", _cases("gpt_oss"))
def test_harmony_reproduces_reference_ids(harmony, case):
    assert harmony.encode(case["text"]) == case["token_ids"]
    assert harmony.decode(case["token_ids"]) == case["text"]


# --- allow_special=False -----------------------------------------------------------------


def test_hf_user_text_cannot_forge_specials(qwen3):
    tokens = qwen3.encode("hi<|im_end|>", allow_special=False)
    assert 151645 not in tokens
    assert qwen3.decode(tokens) == "hi<|im_end|>"


def test_tiktoken_user_text_cannot_forge_specials(harmony):
    tokens = harmony.encode("<|start|>x", allow_special=False)
    assert not set(tokens) & set(harmony.special_tokens.values())


# --- errors and configuration ------------------------------------------------------------


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


def test_tiktoken_unknown_preset():
    pytest.importorskip("tiktoken")
    from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer

    with pytest.raises(ConfigurationError, match="preset"):
        TiktokenFileTokenizer(path=str(o200k_base_file()), preset="cl100k")


def test_tiktoken_unassigned_id_raises():
    pytest.importorskip("tiktoken")
    from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer

    base = TiktokenFileTokenizer(path=str(o200k_base_file()), preset="o200k_base")
    assert base.eos_token_id == 199999
    with pytest.raises(TokenizerError):
        base.decode([200001])  # a gap between the ranks and <|endofprompt|>


def test_tiktoken_malformed_file(tmp_path):
    pytest.importorskip("tiktoken")
    from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer

    bad = tmp_path / "bad.tiktoken"
    bad.write_text("not base64!! x\n")
    with pytest.raises(ConfigurationError, match="ranks"):
        TiktokenFileTokenizer(path=str(bad))


# --- byte level ----------------------------------------------------------------------------


def test_byte_level_default_vocabulary():
    tok = ByteLevelTokenizer()
    assert tok.vocab_size == 260
    assert dict(tok.special_tokens) == {
        "<|endoftext|>": 256,
        "<|im_start|>": 257,
        "<|im_end|>": 258,
        "<|pad|>": 259,
    }
    assert tok.eos_token_id == 256
    assert tok.encode("<|im_start|>hé<|im_end|>") == [257, 104, 0xC3, 0xA9, 258]


def test_byte_level_padding_and_validation():
    assert ByteLevelTokenizer(vocab_size=512).vocab_size == 512
    assert ByteLevelTokenizer(vocab_size=512).decode([300, 65]) == "A"  # padding ids are empty
    with pytest.raises(ConfigurationError, match="vocab_size"):
        ByteLevelTokenizer(vocab_size=259)
    with pytest.raises(ConfigurationError, match="unique"):
        ByteLevelTokenizer(special_tokens=["<a>", "<a>"])
    assert ByteLevelTokenizer(special_tokens=["<x>"]).eos_token_id is None


def test_byte_level_longest_special_wins():
    tok = ByteLevelTokenizer(special_tokens=["<a>", "<a><b>"])
    assert tok.encode("<a><b><a>") == [257, 256]


def test_byte_level_allow_special_false_and_invalid_utf8():
    tok = ByteLevelTokenizer()
    assert tok.encode("<|pad|>", allow_special=False) == list(b"<|pad|>")
    assert tok.decode([0xFF, 65]) == "\ufffdA"
    with pytest.raises(TokenizerError):
        tok.decode([260])
    with pytest.raises(TokenizerError):
        tok.encode("\ud800")


specials = st.sampled_from(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"])


@given(st.lists(st.one_of(st.text(), specials), max_size=8))
def test_byte_level_round_trip(parts):
    tok = ByteLevelTokenizer()
    text = "".join(parts).encode("utf-8", errors="ignore").decode("utf-8")
    for allow in (True, False):
        tokens = tok.encode(text, allow_special=allow)
        assert tok.decode(tokens) == text
        assert all(0 <= t < tok.vocab_size for t in tokens)
    for part in parts:
        if part in tok.special_tokens:
            assert tok.special_tokens[part] in tok.encode(text)


def test_byte_level_pickles():
    tok = ByteLevelTokenizer(special_tokens=["<s>"], vocab_size=300)
    clone = pickle.loads(pickle.dumps(tok))
    assert clone.encode("a<s>") == [97, 256]
    assert clone.vocab_size == 300
