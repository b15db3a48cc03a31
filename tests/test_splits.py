"""Splits by network and union datasets by reference."""

import pytest

from densim.config import ConfigError
from densim.splits import SplitFractions, split_networks, union_split


def refs(dataset, n):
    return [f"{dataset}/{i:04d}" for i in range(n)]


def test_split_is_a_partition_with_configured_sizes():
    split = split_networks(refs("a", 20), SplitFractions(0.7, 0.1, 0.2), seed=0)
    assert [len(split[p]) for p in ("train", "validation", "test")] == [14, 2, 4]
    assert sorted(sum(split.values(), [])) == refs("a", 20)


def test_small_datasets_keep_every_part():
    split = split_networks(refs("a", 3), SplitFractions(0.7, 0.1, 0.2), seed=0)
    assert all(len(split[p]) == 1 for p in ("train", "validation", "test"))


def test_seeds_give_different_reproducible_splits():
    a0 = split_networks(refs("a", 12), SplitFractions(), seed=0)
    assert a0 == split_networks(refs("a", 12), SplitFractions(), seed=0)
    assert a0 != split_networks(refs("a", 12), SplitFractions(), seed=1)


def test_union_is_member_splits_by_reference():
    members = [split_networks(refs(d, 10), SplitFractions(), seed=3) for d in ("a", "b")]
    union = union_split(members)
    for part in ("train", "validation", "test"):
        assert union[part] == sorted(members[0][part] + members[1][part])


def test_fractions_must_sum_to_one():
    with pytest.raises(ConfigError, match="splits: train, validation and test must sum to 1"):
        SplitFractions(0.5, 0.1, 0.1)
