"""The tiktoken-format tokenizer adapter against o200k and the reference renderings."""

from __future__ import annotations

import pytest

from crucible_train.errors import ConfigurationError, TokenizerError

from vocab_paths import o200k_base_file, reference_renderings


@pytest.fixture(scope="module")
def harmony():
    pytest.importorskip("tiktoken")
    from crucible_train.adapters.tiktoken_format.tokenizer import TiktokenFileTokenizer

    return TiktokenFileTokenizer(path=str(o200k_base_file()), preset="o200k_harmony")


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


@pytest.mark.parametrize("case", reference_renderings("gpt_oss"))
def test_harmony_reproduces_reference_ids(harmony, case):
    assert harmony.encode(case["text"]) == case["token_ids"]
    assert harmony.decode(case["token_ids"]) == case["text"]


def test_tiktoken_user_text_cannot_forge_specials(harmony):
    tokens = harmony.encode("<|start|>x", allow_special=False)
    assert not set(tokens) & set(harmony.special_tokens.values())


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
