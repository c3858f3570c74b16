"""Preference data for DPO: loader rows (prompt, chosen, rejected) rendered to datums.

Rows come from :mod:`crucible_train.core.datasets` (``kind="preference"``: an explicit or
implicit prompt, completions as strings or message lists). A pair becomes two datums,
rendered with ``last_assistant_message`` weights kept raw (0/1), so the weighted sum of a
datum's target log-probabilities is its completion's sequence log-probability.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from crucible_train.core.datasets import Message, PreferenceRow
from crucible_train.core.training.data import SupervisedRenderer, datum_from_example
from crucible_train.types import Datum

__all__ = [
    "Message",
    "PreferenceData",
    "PreferencePair",
    "pairs_to_datums",
]

PreferencePair = PreferenceRow
"""The former name of :class:`~crucible_train.core.datasets.PreferenceRow` (same class),
kept so code that builds pairs by hand (``PreferencePair(prompt=..., chosen=...,
rejected=...)``) keeps working."""


@attrs.frozen(kw_only=True)
class PreferenceData:
    """Datums of a preference set, ``[chosen_0, rejected_0, chosen_1, ...]``, and the number
    of pairs skipped because a completion renders to no trainable token."""

    datums: tuple[Datum, ...]
    skipped: int

    @property
    def num_pairs(self) -> int:
        """Pairs kept."""
        return len(self.datums) // 2


def pairs_to_datums(
    pairs: Sequence[PreferenceRow],
    renderer: SupervisedRenderer,
    *,
    max_length: int | None = None,
) -> PreferenceData:
    """Render each pair into a chosen and a rejected datum (raw 0/1 weights: sequence sums)."""
    datums: list[Datum] = []
    skipped = 0
    for pair in pairs:
        rendered: list[Datum] = []
        for completion in (pair.chosen, pair.rejected):
            model_input, weights = renderer.build_supervised_example(
                [*pair.prompt, *completion], "last_assistant_message"
            )
            datum = datum_from_example(model_input, weights, max_length=max_length)
            if datum is None:
                break
            rendered.append(datum)
        if len(rendered) == 2:
            datums.extend(rendered)
        else:
            skipped += 1
    return PreferenceData(datums=tuple(datums), skipped=skipped)
