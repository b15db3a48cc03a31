"""Train / validation / test splits by network, per seed.

Networks are referred to as ``"{dataset}/{network}"`` so that a union dataset (``comb``) lists the networks of
its members by reference, never copying or regenerating them. A union's split for a seed is the union of its
members' splits for that seed: each member is represented in every part in proportion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densim.config import ConfigError, check_settings, setting

PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitFractions:
    """Fractions of a dataset's networks in each part (the ``splits`` config section)."""

    train: float = setting("splits.train")
    validation: float = setting("splits.validation")
    test: float = setting("splits.test")

    def __post_init__(self):
        check_settings(self, "splits")
        values = (self.train, self.validation, self.test)
        if abs(sum(values) - 1) > 1e-9:
            raise ConfigError(f"splits: train, validation and test must sum to 1, got {values}")


def split_networks(references: list[str], fractions: SplitFractions, seed: int) -> dict[str, list[str]]:
    """Split network references at random into train, validation and test.

    Every part gets at least one network when there are at least three (training needs validation and
    testing needs a test set); the rest are rounded from the fractions.

    Parameters
    ----------
    references : list of str
        ``"{dataset}/{network}"`` references of one dataset.
    fractions : SplitFractions
    seed : int
        The split seed; the permutation is drawn from ``SeedSequence([seed, len(references)])``.

    Returns
    -------
    dict
        ``{"train": [...], "validation": [...], "test": [...]}``, each sorted.
    """
    n = len(references)
    order = np.random.default_rng([seed, n]).permutation(n)
    minimum = 1 if n >= 3 else 0
    n_test = max(minimum, round(fractions.test * n))
    n_validation = max(minimum, round(fractions.validation * n))
    n_validation = min(n_validation, n - n_test - minimum)
    shuffled = [references[i] for i in order]
    parts = {
        "test": shuffled[:n_test],
        "validation": shuffled[n_test : n_test + n_validation],
        "train": shuffled[n_test + n_validation :],
    }
    return {part: sorted(parts[part]) for part in PARTS}


def union_split(member_splits: list[dict[str, list[str]]]) -> dict[str, list[str]]:
    """The split of a union dataset: the union of its members' splits, part by part."""
    return {part: sorted(ref for split in member_splits for ref in split[part]) for part in PARTS}
