"""``crucible-train render`` (entry-point layer): show what a renderer makes of conversations.

The messages file holds either one conversation per line as a JSON object
``{"messages": [...], "tools": [...]?}`` (a line may also be a bare list of messages), or
the whole file is one JSON list of messages (detected: the file starts with ``[`` and
parses as one JSON value).

The renderer is named with ``--renderer NAME`` or chosen for ``--model NAME``. Without
``--tokenizer`` the embedded byte-level vocabulary is used, with the renderer's special
tokens registered; ``--tokenizer PATH`` loads a ``tokenizer.json`` (or a directory holding
one) with the ``huggingface`` backend, or a tiktoken rank file (``*.tiktoken``,
``*.tiktoken.gz``) with the ``tiktoken`` backend (preset ``o200k_harmony`` for gpt-oss
renderers, ``o200k_base`` otherwise).

``--mode generation`` renders the generation prompt; ``--mode supervised`` the supervised
example and its per-token weights under ``--train-on``. ``--format text`` prints the
decoded text (supervised: trained tokens highlighted, untrained dim); ``--format json``
prints one ``{"tokens", "weights"?, "text"}`` object per conversation.

Exit codes: 0 done; 2 bad input or options (one ``error:`` line per problem); 1
unexpected error (reported by :mod:`crucible_train.entrypoints.cli.main`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs
import numpy as np
from rich.console import Console
from rich.text import Text

from crucible_train.container import BACKENDS
from crucible_train.core.renderers import (
    Renderer,
    TrainOnWhat,
    get_renderer,
    renderer_for_model,
)
from crucible_train.entrypoints.cli._options import Commands
from crucible_train.errors import ConfigurationError, CrucibleError, InvalidDataError
from crucible_train.ports.tokenizer import Tokenizer

__all__ = [
    "MODES",
    "RenderOptions",
    "add_render_parser",
    "read_conversations",
    "render_options_from_args",
    "run_render",
]

MODES = ("generation", "supervised")
FORMATS = ("text", "json")
TRAINED_STYLE = "bold black on green"
UNTRAINED_STYLE = "dim"


@attrs.frozen(kw_only=True)
class RenderOptions:
    """The ``render`` command's options (see ``crucible-train render --help``)."""

    messages: str
    model: str | None = None
    renderer: str | None = None
    tokenizer: str | None = None
    mode: str = "generation"
    train_on: str = TrainOnWhat.LAST_ASSISTANT_MESSAGE.value
    format: str = "text"


@attrs.frozen
class Conversation:
    """One conversation of the messages file and the line it came from."""

    line: int
    messages: list[Any]
    tools: list[Any] | None = None


def add_render_parser(commands: Commands, debug: argparse.ArgumentParser) -> None:
    """Add the ``render`` subcommand to ``commands``."""
    command = commands.add_parser(
        "render",
        help="render conversations to tokens with a chat renderer (inspect prompts/weights)",
        description="Render each conversation of a messages file with a chat renderer and "
        "print the decoded text (supervised mode: trained tokens highlighted, untrained "
        'dim) or one JSON object {"tokens", "weights", "text"} per conversation. FILE '
        'holds one {"messages": [...], "tools": [...]} per line, or one JSON list of '
        "messages. Exit 0 when done, 2 on bad input or options.",
        parents=[debug],
    )
    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="NAME", help="use the renderer recommended for NAME")
    which.add_argument("--renderer", metavar="NAME", help="renderer name (see the README)")
    command.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="tokenizer.json (or its directory), or a .tiktoken rank file "
        "(default: the embedded byte-level vocabulary plus the renderer's special tokens)",
    )
    command.add_argument("--messages", required=True, metavar="FILE", help="messages file")
    command.add_argument("--mode", choices=MODES, default="generation", help="default: generation")
    command.add_argument(
        "--train-on",
        default=TrainOnWhat.LAST_ASSISTANT_MESSAGE.value,
        metavar="WHAT",
        help="supervised weights: "
        + ", ".join(m.value for m in TrainOnWhat)
        + " (default: last_assistant_message)",
    )
    command.add_argument("--format", choices=FORMATS, default="text", help="default: text")
    command.set_defaults(handler=_run_from_args)


def _run_from_args(args: argparse.Namespace) -> int:
    return run_render(render_options_from_args(args))


def render_options_from_args(args: argparse.Namespace) -> RenderOptions:
    """The options of a parsed ``render`` command line."""
    return RenderOptions(
        messages=args.messages,
        model=args.model,
        renderer=args.renderer,
        tokenizer=args.tokenizer,
        mode=args.mode,
        train_on=args.train_on,
        format=args.format,
    )


# --- input ----------------------------------------------------------------------------------


def _conversation(data: Any, line: int) -> Conversation:
    """A conversation from one parsed JSON value (object with messages, or a list)."""
    if isinstance(data, list):
        messages, tools = data, None
    elif isinstance(data, dict):
        if "messages" not in data:
            raise InvalidDataError("expected a 'messages' key")
        messages, tools = data["messages"], data.get("tools")
        if tools is not None and not (
            isinstance(tools, list) and all(isinstance(t, dict) for t in tools)
        ):
            raise InvalidDataError("'tools' must be a list of objects")
    else:
        raise InvalidDataError(
            f"expected a JSON object or a list of messages, got {type(data).__name__}"
        )
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise InvalidDataError("'messages' must be a list of objects")
    return Conversation(line, messages, tools or None)


def read_conversations(path: str) -> list[Conversation]:
    """The conversations of a messages file.

    Raises:
        ConfigurationError: the file cannot be read.
        InvalidDataError: malformed lines, one problem per line naming it.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--messages: cannot read {path!r}: {exc}") from None
    if text.lstrip().startswith("["):
        try:
            whole = json.loads(text)
        except ValueError:
            whole = None  # a JSONL file whose lines are lists: read line by line
        if isinstance(whole, list) and all(isinstance(m, dict) for m in whole):
            line = text[: len(text) - len(text.lstrip())].count("\n") + 1
            return [_conversation(whole, line)]
    conversations: list[Conversation] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            conversations.append(_conversation(json.loads(raw), number))
        except (ValueError, InvalidDataError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            problems.append(f"{path}:{number}: malformed conversation line: {reason}")
    if problems:
        raise InvalidDataError(*problems)
    if not conversations:
        raise InvalidDataError(f"{path}: no conversations")
    return conversations


# --- renderer and tokenizer -----------------------------------------------------------------


def _pick_renderer(options: RenderOptions, tokenizer: Tokenizer) -> Renderer:
    if options.renderer is not None:
        return get_renderer(options.renderer, tokenizer)
    if options.model is None:
        raise ConfigurationError("give --model NAME or --renderer NAME")
    return renderer_for_model(options.model, tokenizer)


def _load_tokenizer(path: str, renderer: Renderer) -> Tokenizer:
    backends = BACKENDS["tokenizer"]
    name = Path(path).name
    if name.endswith((".tiktoken", ".tiktoken.gz")):
        preset = "o200k_harmony" if renderer.name.startswith("gpt_oss") else "o200k_base"
        tokenizer: Tokenizer = backends["tiktoken"].adapter(path=path, preset=preset)
    else:
        tokenizer = backends["huggingface"].adapter(path=path)
    return tokenizer


def build_renderer(options: RenderOptions) -> Renderer:
    """The renderer the options name, over the tokenizer they choose.

    Raises:
        ConfigurationError: unknown renderer or model (the message lists the known
            renderers), or a tokenizer that cannot be loaded.
    """
    byte_level = BACKENDS["tokenizer"]["byte_level"].adapter
    probe = _pick_renderer(options, byte_level())
    if options.tokenizer is None:
        tokenizer: Tokenizer = byte_level(special_tokens=list(probe.special_token_texts))
    else:
        tokenizer = _load_tokenizer(options.tokenizer, probe)
    return get_renderer(probe.name, tokenizer)


# --- output ---------------------------------------------------------------------------------


def _runs(tokens: Sequence[int], weights: Sequence[float]) -> list[tuple[list[int], float]]:
    """Maximal runs of tokens with equal weight."""
    runs: list[tuple[list[int], float]] = []
    for token, weight in zip(tokens, weights, strict=True):
        if runs and runs[-1][1] == weight:
            runs[-1][0].append(token)
        else:
            runs.append(([token], weight))
    return runs


def _render_one(
    renderer: Renderer, conv: Conversation, mode: str, train_on: TrainOnWhat
) -> tuple[list[int], list[float] | None]:
    if mode == "generation":
        prompt = renderer.build_generation_prompt(conv.messages, conv.tools)
        return list(prompt.to_ints()), None
    model_input, weights = renderer.build_supervised_example(conv.messages, train_on, conv.tools)
    return list(model_input.to_ints()), [float(w) for w in np.asarray(weights)]


def _text_output(
    console: Console,
    renderer: Renderer,
    conv: Conversation,
    tokens: list[int],
    weights: list[float] | None,
) -> None:
    header = f"# line {conv.line}: {len(tokens)} tokens"
    if weights is not None:
        header += f", {sum(1 for w in weights if w > 0)} trained"
    console.print(Text(header, style="bold"))
    body = Text()
    if weights is None:
        body.append(renderer.tokenizer.decode(tokens))
    else:
        for run, weight in _runs(tokens, weights):
            style = TRAINED_STYLE if weight > 0 else UNTRAINED_STYLE
            body.append(renderer.tokenizer.decode(run), style=style)
    console.print(body)


def run_render(options: RenderOptions, *, stdout: TextIO | None = None) -> int:
    """Render the messages file; returns the exit code (0).

    Raises:
        ConfigurationError: unknown renderer, model, ``--train-on`` or unreadable files.
        InvalidDataError: malformed lines or conversations the renderer refuses (each
            problem names its line).
    """
    out = stdout if stdout is not None else sys.stdout
    if options.mode not in MODES:
        raise ConfigurationError(f"--mode: expected one of {', '.join(MODES)}")
    if options.format not in FORMATS:
        raise ConfigurationError(f"--format: expected one of {', '.join(FORMATS)}")
    try:
        train_on = TrainOnWhat.parse(options.train_on)
    except ConfigurationError as exc:
        raise ConfigurationError(f"--train-on: {exc}") from None
    renderer = build_renderer(options)
    conversations = read_conversations(options.messages)
    results: list[tuple[Conversation, list[int], list[float] | None]] = []
    problems: list[str] = []
    for conv in conversations:
        try:
            tokens, weights = _render_one(renderer, conv, options.mode, train_on)
        except CrucibleError as exc:
            problems.extend(f"{options.messages}:{conv.line}: {p}" for p in exc.problems)
            continue
        results.append((conv, tokens, weights))
    if problems:
        raise InvalidDataError(*problems)
    if options.format == "json":
        for _, tokens, weights in results:
            record: dict[str, Any] = {"tokens": tokens}
            if weights is not None:
                record["weights"] = weights
            record["text"] = renderer.tokenizer.decode(tokens)
            print(json.dumps(record, ensure_ascii=False), file=out)
        return 0
    console = Console(file=out, highlight=False, soft_wrap=True, emoji=False, markup=False)
    for conv, tokens, weights in results:
        _text_output(console, renderer, conv, tokens, weights)
    return 0
