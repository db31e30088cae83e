"""spos_tf.search.config: the search's settings (bounds and choices from the field metadata, rules
between fields), BitOps budgets and the oracle's cost constraint. No TensorFlow run."""

import numpy as np
import pytest

from spos_tf import costs
from spos_tf.search import config as search_config
from spos_tf import spaces
from spos_tf.search.config import SearchConfig

from _supernet_workdir import tiny_space


def test_constraint_hook_builds_every_cost():
    space = tiny_space()
    constraint = search_config.build_constraint(space, {"macs": 2.5e6, "params": 8e4})
    arch = space.parse("0,1,2,3")
    values = space.to_values(arch)
    assert constraint["macs"][0](values) == costs.macs(space, arch)
    assert constraint["params"][0](values) == costs.params(space, arch)
    assert constraint["params"][1] == 8e4
    with pytest.raises(ValueError, match="unknown constraint"):
        search_config.build_constraint(space, {"latency": 1.0})


def test_bitops_convention_sets_what_the_constraint_counts():
    """--bitops_convention=paper: budget and constraint count the choice blocks only (Table 6)."""
    space = spaces.get(
        "resnet18_mixed_precision", image_size=16, width=0.25, repeats=(1, 1, 1, 1), num_classes=10
    )
    arch = space.sample(np.random.default_rng(0))
    fixed = costs.table(space).fixed_bitops()
    for convention, extra in (("ours", fixed), ("paper", 0)):
        config = SearchConfig(
            supernet_dir="/s", workdir="/w", bitops_budget="3w3a", bitops_convention=convention
        ).validate()
        limit = search_config.resolve_limits(config, space)["bitops"]
        assert limit == costs.uniform_bitops(space, 3, convention="paper") + extra
        constraint = search_config.build_constraint(
            space, {"bitops": limit}, bitops_convention=convention
        )
        cost, _ = constraint["bitops"]
        assert cost(space.to_values(arch)) == costs.bitops(space, arch, include_fixed=False) + extra
        assert search_config.arch_costs(space, arch, convention)["bitops"] == cost(
            space.to_values(arch)
        )
    with pytest.raises(ValueError, match="--bitops_convention"):
        SearchConfig(supernet_dir="/s", workdir="/w", bitops_convention="x").validate()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(supernet_dir=None), "--supernet_dir is required"),
        (dict(workdir="/s"), "--workdir must differ from --supernet_dir"),
        (dict(algorithm="grid"), "--algorithm must be one of evolution, random, both; got 'grid'"),
        (dict(population_size=0), "--population_size must be an integer >= 1, got 0"),
        (dict(num_crossover=-1), "--num_crossover must be an integer >= 0, got -1"),
        (dict(max_trials=2.5), "--max_trials must be an integer >= 1, got 2.5"),
        (dict(seed=True), "--seed must be an integer >= 0, got True"),
        (dict(mutation_prob=1.5), r"--mutation_prob must be a number in \[0, 1\], got 1.5"),
        (dict(max_macs=0.0), r"--max_macs must be a number in \(0, inf\), got 0.0"),
        (dict(max_params=-3.0), r"--max_params must be a number in \(0, inf\)"),
        (dict(holdout_images=0), "--holdout_images must be an integer >= 1, got 0"),
        (dict(cache_mb=-1), "--cache_mb must be an integer >= 0, got -1"),
        (
            dict(calib_mode="running"),
            "--calib_mode must be one of exact, ema, batch_stats; got 'running'",
        ),
        (
            dict(calib_stream="shuffled"),
            r"--calib_stream must be fixed \(every candidate .*\) or fresh \(.*\); got 'shuffled'",
        ),
        (
            dict(holdout_images_per_candidate=-1),
            r"--holdout_images_per_candidate must be an integer >= 0 \(0: every candidate on all "
            r"held-out images; N: .*\); got -1",
        ),
        (
            dict(holdout_images=100, holdout_images_per_candidate=200),
            r"--holdout_images_per_candidate=200 exceeds --holdout_images=100: .* lower it to at "
            r"most 100 .*, raise --holdout_images, or pass 0",
        ),
        (
            dict(num_crossover=30, num_mutation=25),
            r"--num_crossover \+ --num_mutation \(30 \+ 25\) must not exceed --population_size \(50\)",
        ),
        (dict(max_latency_ms=2.0), "--max_latency_ms=2 needs --latency_table"),
        (dict(latency_table="/no/such/table.json"), "--latency_table=.* does not exist"),
        (dict(seeds=(1, 1)), r"--seeds must be distinct integers >= 0, got \[1, 1\]"),
        (dict(bitops_budget="3w4a"), "--bitops_budget must be kWkA with the same k"),
        (dict(bitops_budget="3w3a", max_bitops=1e9), "pass one of --max_bitops"),
        (
            dict(steer_by_score=True),
            "--steer_by_score steers evolution by a combination score, but --score is "
            "'supernet': pass --score=supernet\\+macs or --score=supernet\\+synflow",
        ),
        (
            dict(steer_by_score=True, score="supernet+synflow", algorithm="random"),
            "random search has none: pass --algorithm=evolution or both",
        ),
        (dict(finetune_steps=-1), "--finetune_steps must be an integer >= 0, got -1"),
        (dict(finetune_lr=0.0), r"--finetune_lr must be a number in \(0, inf\), got 0.0"),
        (
            dict(finetune_steps=5, precision="mixed_float16"),
            "--finetune_steps trains without loss scaling.*pass --precision=float32 or "
            "mixed_bfloat16, or drop --finetune_steps",
        ),
    ],
)
def test_a_bad_setting_is_refused_naming_the_flag(change, message):
    base = dict(supernet_dir="/s", workdir="/w")
    with pytest.raises(ValueError, match=message):
        SearchConfig(**{**base, **change}).validate()


def test_defaults_are_valid_and_seeds_are_parsed():
    assert SearchConfig(supernet_dir="/s", workdir="/w").validate().seeds == ()
    assert SearchConfig(supernet_dir="/s", workdir="/w", seeds=["2", 0]).seeds == (2, 0)
    with pytest.raises(ValueError, match="--seeds must be a list of integers"):
        SearchConfig(seeds=("a",))


def test_resume_neutral_settings_are_the_ones_a_resumed_search_may_change():
    assert set(search_config.NEUTRAL) == {
        "workdir",
        "algorithm",
        "score",  # changes only which evaluated candidate best.json holds
        "max_trials",
        "overwrite",
        "data_dir",
        "cache_mb",
        "progress",
        "eval_batch_size",
        "wait_for_workers",
    }


def test_settings_round_trip_through_json():
    config = SearchConfig(supernet_dir="/s", workdir="/w", seeds=(0, 1), max_macs=3e8)
    d = config.to_dict()
    assert d["seeds"] == [0, 1] and d["max_macs"] == 3e8 and d["supernet_dir"] == "/s"
    assert SearchConfig(**{**d, "seeds": tuple(d["seeds"])}) == config
    assert SearchConfig().to_dict()["workdir"] is None
