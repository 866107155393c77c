"""Weighted alias routing: the split follows the weights closely; a routing key sticks."""

from __future__ import annotations

from collections import Counter

from nova.core.versions import VersionWeight
from nova.functions.routing import WeightedChoice


def test_the_split_is_within_two_picks_of_the_weights_at_any_count() -> None:
    # A golden-ratio sequence puts at most 2 of any run's points off an interval's share
    # (3,000 random starts measured): 1 point of 200, 0.02 of 10,000. Random draws would
    # wander by ~4 picks at 200 and ~30 at 10,000.
    choice = WeightedChoice((VersionWeight(2, 90), VersionWeight(3, 10)))
    for count in (200, 2_000, 10_000):
        picks = Counter(choice.pick(None) for _ in range(count))
        assert abs(picks[3] - count / 10) <= 2, (count, picks)
        assert set(picks) == {2, 3}


def test_one_version_takes_everything() -> None:
    choice = WeightedChoice((VersionWeight(7, 100),))
    assert {choice.pick(None) for _ in range(100)} | {choice.pick("key")} == {7}


def test_a_routing_key_always_lands_on_the_same_version() -> None:
    routing = (VersionWeight(1, 50), VersionWeight(2, 50))
    first, second = WeightedChoice(routing), WeightedChoice(routing)  # e.g. two daemons
    for key in (f"user-{n}" for n in range(200)):
        assert len({first.pick(key) for _ in range(5)} | {second.pick(key)}) == 1
    keyed = Counter(first.pick(f"user-{n}") for n in range(2000))
    assert 800 < keyed[1] < 1200  # keys still spread over both versions
