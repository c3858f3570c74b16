"""Write a tiny random-initialised Qwen3 model directory that loads offline.

usage: python scripts/tinker-server/make_tiny_qwen3.py OUT_DIR [--vocab 1024] [--hidden 64]
       [--layers 2] [--seed 0]

The directory holds a Hugging Face ``Qwen3ForCausalLM`` (float32 safetensors, untied
embeddings: skyrl-tx 0.3.0 cannot train the unembedding of a tied model, which the
Tinker SDK does by default) and a byte-level BPE ``tokenizer.json`` trained in about a
second on a built-in corpus (arithmetic questions and answers rendered as ChatML, plus
English sentences). The tokenizer has the ChatML and Qwen3 special tokens
(``<|im_start|>``, ``<|im_end|>`` = eos, ``<think>``, ``<tool_call>``, ...), so the
``qwen3`` / ``qwen3_instruct`` renderers work with it. The output is deterministic: the
same arguments give byte-identical files. Needs torch, transformers and tokenizers (the
server's virtual environment has them); run it with that environment's Python so the
saved configuration matches its transformers version.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

# Special tokens first (ids 0..), in this order; <|im_end|> is the eos token.
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
# Added tokens that Qwen3 does not flag as special (matched in text all the same).
ADDED = [
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PHRASES = (
    "the quick brown fox jumps over lazy dog",
    "what is answer question number yes no",
    "assistant user system please think about this carefully and reply with one word",
)


def corpus() -> Iterator[str]:
    """Deterministic training text: ChatML arithmetic turns and word sequences."""
    for a in range(0, 100, 3):
        for b in range(0, 100, 7):
            for op, value in (("+", a + b), ("-", a - b)):
                yield (
                    f"<|im_start|>user\nWhat is {a} {op} {b}?<|im_end|>\n"
                    f"<|im_start|>assistant\n{value}<|im_end|>\n"
                )
    words = " ".join(PHRASES).split()
    for i in range(2000):
        yield " ".join(words[(i * 7 + j * 13) % len(words)] for j in range(12)) + f" {i}."


def build_tokenizer(out: Path, vocab: int) -> int:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab - len(ADDED),
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.add_tokens([AddedToken(text, special=False, normalized=False) for text in ADDED])
    tok.save(str(out / "tokenizer.json"))
    size = tok.get_vocab_size(with_added_tokens=True)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 2048,
        "eos_token": "<|im_end|>",
        "pad_token": "<|pad|>",
        "bos_token": None,
        "unk_token": None,
        "additional_special_tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special_map = {"eos_token": "<|im_end|>", "pad_token": "<|pad|>"}
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2) + "\n")
    return size


def build_model(out: Path, n_tokens: int, hidden: int, layers: int, seed: int) -> int:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    heads = max(2, hidden // 32)
    config = Qwen3Config(
        vocab_size=n_tokens,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=hidden // heads,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        eos_token_id=SPECIAL.index("<|im_end|>"),
        pad_token_id=SPECIAL.index("<|pad|>"),
        bos_token_id=None,
    )
    model = Qwen3ForCausalLM(config).to(torch.float32)
    model.save_pretrained(str(out), safe_serialization=True)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    n_tokens = build_tokenizer(args.out, args.vocab)
    n_params = build_model(args.out, n_tokens, args.hidden, args.layers, args.seed)
    print(
        f"wrote {args.out}: {n_tokens} tokens, {n_params} parameters "
        f"in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
