"""spos_tf.train.metrics: the metrics.jsonl records of a window of steps, against sums done by
hand and costs from spos_tf.costs."""

from types import SimpleNamespace

import pytest

from spos_tf import costs
from spos_tf import spaces
from spos_tf.models.sampling import ArchSampler
from spos_tf.train.config import TrainConfig
from spos_tf.train.metrics import MetricsWindow, bin_fn, bitops_fn
from spos_tf.train.recipe import make_schedule

TINY = dict(image_size=8, width=0.125, repeats=(1, 1, 1, 1), num_classes=10)
EDGES = (380e3, 440e3, 500e3, 560e3)  # the tiny space spans 379,648 .. 557,568 MACs


def _resolved(space_name="shufflenet_oneshot", arch=None, **changes):
    config = TrainConfig(
        steps=10,
        batch_size=4,
        learning_rate=0.5,
        arch=None if arch is None else str(arch),
        **changes,
    )
    space = spaces.get(space_name, **TINY)
    if isinstance(arch, str):
        arch = space.parse(arch)
    return SimpleNamespace(
        config=config,
        space=space,
        arch=arch,
        sampler=ArchSampler(space, 0) if arch is None else None,
    )


def test_a_record_holds_the_means_of_its_window_and_starts_the_next():
    resolved = _resolved()
    window = MetricsWindow(resolved, make_schedule(resolved.config))
    for step, (loss, correct, macs) in enumerate(
        [(1.0, 1, 10.0), (2.0, 2, 20.0), (3.0, 4, 30.0)], start=1
    ):
        window.add(step, loss, correct, macs)
    record = window.record(3)
    assert {k: record[k] for k in ("step", "loss", "accuracy", "arch_macs")} == {
        "step": 3,
        "loss": 2.0,
        "accuracy": 7 / 12,
        "arch_macs": 20.0,
    }
    assert record["learning_rate"] == pytest.approx(0.5 * (1 - 2 / 10))  # of update 3 (t = 2)
    assert record["examples_per_second"] == pytest.approx(4 * record["steps_per_second"])
    assert not {"arch_bitops", "path_bins"} & set(record)  # float space, no bins
    window.add(4, 5.0, 0, 40.0)
    record = window.record(4)
    assert (record["loss"], record["accuracy"], record["arch_macs"]) == (5.0, 0.0, 40.0)


def test_bins_count_the_sampled_paths_of_the_window():
    resolved = _resolved(cost_bins=EDGES)
    window = MetricsWindow(resolved, make_schedule(resolved.config))
    for step in range(1, 7):
        window.add(step, 1.0, 1, 0.0)
    macs = [costs.macs(resolved.space, resolved.sampler(t)) for t in range(6)]
    expected = [
        sum(lo <= m < hi or (hi == EDGES[-1] and m == hi) for m in macs)
        for lo, hi in zip(EDGES, EDGES[1:])
    ]
    record = window.record(6)
    assert record["path_bins"] == expected
    assert record["path_bins_outside"] == 6 - sum(expected)
    window.add(7, 1.0, 1, 0.0)
    record = window.record(7)
    assert sum(record["path_bins"]) + record["path_bins_outside"] == 1  # the new window


def test_bins_and_bitops_apply_only_where_they_mean_something():
    assert bin_fn(_resolved()) is None  # no edges
    assert bin_fn(_resolved(arch="0,0,0,0", cost_bins=EDGES)) is None  # one fixed path
    assert bin_fn(_resolved(sampling="cost_bins"))[0] == pytest.approx(
        [290e6 + 10e6 * i for i in range(8)]
    )  # the reference's bins
    assert bitops_fn(_resolved()) is None  # a float space


def test_bitops_of_a_quantized_space_are_those_of_the_trained_path():
    resolved = _resolved("resnet18_mixed_precision")
    f = bitops_fn(resolved)
    assert [f(t) for t in range(3)] == [
        float(costs.bitops(resolved.space, resolved.sampler(t))) for t in range(3)
    ]
    fixed = costs.uniform_arch(resolved.space, bits=2)
    g = bitops_fn(_resolved("resnet18_mixed_precision", arch=fixed))
    assert g(0) == g(5) == float(costs.bitops(resolved.space, fixed))
