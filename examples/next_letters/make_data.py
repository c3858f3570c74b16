"""Write the "next letters" example task: shift every letter of a word one step on.

A prompt asks for the word whose letters each come one later in the alphabet (``z`` wraps to
``a``), e.g. ``Next letters: cat`` -> ``dbu``. The words are random lowercase strings of 3 to
5 letters, so no split can be memorised from another: each word appears in one file only.

Usage::

    python examples/next_letters/make_data.py DIR [--seed N] [--train N] [--rl N] [--test N]

writes into ``DIR``:

* ``train.jsonl``: SFT conversations ``{"messages": [user, assistant]}``;
* ``rl.jsonl``: prompt-only rows ``{"prompt": ..., "answer": ...}`` for ``train rl``;
* ``test.jsonl``: held-out prompt-only rows of the same shape (``test_dataset``);
* ``samples.jsonl``: the held-out rows again as eval samples ``{"id", "input", "target"}``.

Standard library only; the same seed writes the same files.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from collections.abc import Iterable, Mapping
from pathlib import Path

PROMPT_PREFIX = "Next letters: "
MIN_LETTERS = 3
MAX_LETTERS = 5


def next_letters(word: str) -> str:
    """``word`` with each letter replaced by the next one in the alphabet (``z`` -> ``a``)."""
    letters = string.ascii_lowercase
    return "".join(letters[(letters.index(c) + 1) % len(letters)] for c in word)


def distinct_words(rng: random.Random, count: int) -> list[str]:
    """``count`` different random lowercase words of ``MIN_LETTERS``..``MAX_LETTERS`` letters."""
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < count:
        length = rng.randint(MIN_LETTERS, MAX_LETTERS)
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(length))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def write_jsonl(path: Path, rows: Iterable[Mapping[str, object]]) -> int:
    """Write one JSON object per line; returns the number of rows."""
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and write the four files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="directory to write the files into")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--train", type=int, default=8000, help="SFT conversations")
    parser.add_argument("--rl", type=int, default=2000, help="RL prompt rows")
    parser.add_argument("--test", type=int, default=200, help="held-out prompt rows")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    words = distinct_words(rng, args.train + args.rl + args.test)
    train = words[: args.train]
    rl = words[args.train : args.train + args.rl]
    test = words[args.train + args.rl :]
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    counts = {
        "train.jsonl": write_jsonl(
            out / "train.jsonl",
            (
                {
                    "messages": [
                        {"role": "user", "content": PROMPT_PREFIX + w},
                        {"role": "assistant", "content": next_letters(w)},
                    ]
                }
                for w in train
            ),
        ),
        "rl.jsonl": write_jsonl(
            out / "rl.jsonl",
            ({"prompt": PROMPT_PREFIX + w, "answer": next_letters(w)} for w in rl),
        ),
        "test.jsonl": write_jsonl(
            out / "test.jsonl",
            ({"prompt": PROMPT_PREFIX + w, "answer": next_letters(w)} for w in test),
        ),
        "samples.jsonl": write_jsonl(
            out / "samples.jsonl",
            (
                {"id": f"test-{i}", "input": PROMPT_PREFIX + w, "target": next_letters(w)}
                for i, w in enumerate(test)
            ),
        ),
    }
    for name, count in counts.items():
        print(f"{out / name}: {count} rows")


if __name__ == "__main__":
    main()
