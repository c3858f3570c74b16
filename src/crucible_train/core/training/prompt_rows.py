"""An RL dataset over prompt rows: every recipe's prompts, whatever their source.

Core layer. :class:`PromptRowDataset` turns :class:`~crucible_train.core.datasets.PromptRow`
s (a user's JSONL, a Parquet file, a built-in task's rows ...) into batches of
:class:`PromptGroup` s: ``group_size`` single-turn environments that share the row's
generation prompt. The environments give reward 0 (:class:`PromptOnlyEnv`): what a sampled
answer is worth is decided for the whole batch afterwards, by a reward over the row
(``PromptGroup.row``), or not at all (distillation).

Batch ``i`` is a pure function of ``i`` (and the shuffle seed), so a resumed run sees the
batches an uninterrupted one would. Beyond one pass the rows are cycled; with a shuffle
seed each pass has its own seeded order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from crucible_train.core.datasets import PromptRow
from crucible_train.core.renderers.base import Renderer
from crucible_train.core.training.envs import Env, EnvGroupBuilder, PromptOnlyEnv, StopSequences
from crucible_train.errors import ConfigurationError
from crucible_train.types import ModelInput

__all__ = ["PromptGroup", "PromptRowDataset"]


def _row_tuple(rows: Sequence[PromptRow]) -> tuple[PromptRow, ...]:
    return tuple(rows)


class PromptGroup(EnvGroupBuilder):
    """``size`` prompt-only environments over one row's generation prompt.

    Attributes:
        row: the row (its prompt messages and extra columns, for a reward).
        prompt: the rendered generation prompt.
        stop: the renderer's stop sequences.
        size: environments per group.
    """

    def __init__(self, row: PromptRow, prompt: ModelInput, stop: StopSequences, size: int) -> None:
        self.row = row
        self.prompt = prompt
        self.stop = stop
        self.size = size

    def make_envs(self) -> Sequence[Env]:
        """Fresh environments, all on the row's prompt."""
        return [PromptOnlyEnv(self.prompt, self.stop) for _ in range(self.size)]


@attrs.frozen(kw_only=True)
class PromptRowDataset:
    """Batches of ``groups_per_batch`` rows, ``group_size`` samples each (an ``RLDataset``).

    Args:
        rows: the prompts, in their given order.
        renderer: builds each row's generation prompt and gives the stop sequences.
        groups_per_batch: rows per batch.
        group_size: samples per row.
        num_batches: batches offered (passes over the rows repeat); ``None``: the whole
            batches of one pass.
        shuffle_seed: each pass visits the rows in an order seeded by ``(seed, pass)``;
            ``None`` keeps the given order in every pass.

    Raises:
        ConfigurationError: fewer rows than ``groups_per_batch``, or a size below 1.
    """

    rows: Sequence[PromptRow] = attrs.field(converter=_row_tuple)
    renderer: Renderer
    groups_per_batch: int
    group_size: int
    num_batches: int | None = None
    shuffle_seed: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.groups_per_batch < 1 or self.group_size < 1:
            raise ConfigurationError(
                f"groups_per_batch and group_size must be >= 1, got {self.groups_per_batch} "
                f"and {self.group_size}"
            )
        if len(self.rows) < self.groups_per_batch:
            raise ConfigurationError(
                f"groups_per_batch {self.groups_per_batch} is larger than the "
                f"{len(self.rows)} prompt rows; lower groups_per_batch or add rows"
            )

    def __len__(self) -> int:
        """``num_batches``, or the whole batches of one pass over the rows."""
        if self.num_batches is not None:
            return self.num_batches
        return len(self.rows) // self.groups_per_batch

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.rows)))
        if self.shuffle_seed is not None:
            random.Random(f"{self.shuffle_seed}:{epoch}").shuffle(order)
        return order

    def rows_of_batch(self, index: int) -> list[PromptRow]:
        """The rows of batch ``index`` (positions ``index * groups_per_batch ...``)."""
        n = len(self.rows)
        start = index * self.groups_per_batch
        orders: dict[int, list[int]] = {}
        chosen = []
        for position in range(start, start + self.groups_per_batch):
            epoch = position // n
            if epoch not in orders:
                orders[epoch] = self._order(epoch)
            chosen.append(self.rows[orders[epoch][position % n]])
        return chosen

    def get_batch(self, index: int) -> Sequence[EnvGroupBuilder]:
        """The groups of batch ``index``."""
        stop = self.renderer.get_stop_sequences()
        return [
            PromptGroup(
                row, self.renderer.build_generation_prompt(row.prompt), stop, self.group_size
            )
            for row in self.rows_of_batch(index)
        ]
