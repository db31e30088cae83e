"""spos_tf.train.config: the settings' checks (field metadata and the rules between fields), the
config.json a run writes (pinned, so existing run directories still resume) and resolve()."""

import dataclasses
import json
from pathlib import Path

import pytest

from spos_tf.data import DataConfig
from spos_tf.runs import run_dir
from spos_tf.models.sampling import ArchSampler
from spos_tf.train.config import NEUTRAL_FIELDS, TrainConfig, resolve

from _train_checks import parse_flagfile

# config.json of `python -m spos_tf.train --flagfile=flags/tiny_supernet.cfg --noprogress`, as
# the app wrote it before the settings moved into field metadata (workdir and data_dir aside),
# plus the settings added since: data.data_service and precision (issue 15), data.eval_resize
# (issue 22), at their defaults; calib_batches (1 batch of eval_batch_size 150) became
# calib_images (issue 21): such older files still read back (test_an_old_config_json_...).
TINY_CONFIG_JSON = {
    "arch": None,
    "batch_size": 32,
    "bin_tries": 500,
    "bn_momentum": 0.9,
    "calib_images": 150,
    "calr_gamma_max": 4.0,
    "checkpoint_every": 3,
    "cost_bins": None,
    "deterministic": False,
    "data": {
        "augment": "light",
        "cache": True,
        "data_dir": "DATA",
        "eval_crop_fraction": 1.0,
        "holdout_split": "validation",
        "image_size": 8,
        "manual_dir": None,
        "name": "spos_digits",
        "preprocessing": "standard",
        "eval_resize": "standard",
        "shuffle_buffer": 10000,
        "data_service": None,
        "test_split": "test",
        "train_split": "train",
    },
    "eval_batch_size": 150,
    "eval_batches": 1,
    "eval_every": 0,
    "eval_paths": 10,
    "eval_split": "holdout",
    "final_bn_augment": False,
    "final_bn_batches": 0,
    "few_shot_choice": None,
    "few_shot_from": None,
    "few_shot_split": None,
    "init_from": None,
    "sample_from": None,
    "keep_checkpoints": 10,
    "label_smoothing": 0.1,
    "latency_table": None,
    "learning_rate": 0.5,
    "log_every": 3,
    "lr_schedule": "linear",
    "lr_schedule_steps": None,
    "lr_schedule_start": 0,
    "max_latency_ms": None,
    "max_macs": None,
    "min_latency_ms": None,
    "min_macs": None,
    "momentum": 0.9,
    "momentum_split": None,
    "optimizer": "sgd",
    "overwrite": False,
    "precision": "float32",
    "progress": False,
    "rank_loss_margin": 0.02,
    "rank_loss_weight": 1.0,
    "sampling": "uniform",
    "seed": 0,
    "space": "shufflenet_oneshot",
    "space_overrides": {
        "image_size": 8,
        "num_classes": 10,
        "repeats": [1, 1, 1, 1],
        "width": 0.125,
    },
    "steps": 12,
    "strategy": "default",
    "uniform_bits": None,
    "weight_decay": 4e-05,
    "workdir": "WORKDIR",
}


def test_resolve_fills_the_data_settings_and_writes_the_same_config_json(data_dir):
    config = parse_flagfile(
        "tiny_supernet.cfg", "--workdir=/w", f"--data_dir={data_dir}", "--noprogress"
    )
    resolved = resolve(config)
    expected = {
        **TINY_CONFIG_JSON,
        "workdir": "/w",
        "data": {**TINY_CONFIG_JSON["data"], "data_dir": data_dir},
    }
    assert resolved.config.to_dict() == expected
    assert TrainConfig.from_dict(expected).to_dict() == expected  # what a resume reads back
    assert (resolved.space.image_size, resolved.space.num_classes) == (8, 10)
    assert resolved.arch is None and resolved.eval_sampler is None
    assert resolved.sampler(5) == ArchSampler(resolved.space, 0)(5)


def test_neutral_settings_are_those_that_do_not_change_a_result():
    assert set(NEUTRAL_FIELDS) == {
        "workdir",
        "overwrite",
        "progress",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
        "eval_every",
        "data.data_dir",
        "data.manual_dir",
        "data.data_service",
    }


def test_from_dict_refuses_unknown_settings():
    with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['lr'\]"):
        TrainConfig.from_dict({"lr": 0.1})


def test_a_path_is_a_workdir():
    assert TrainConfig(workdir=Path("/tmp/x")).validate().to_dict()["workdir"] == "/tmp/x"


BAD = [  # bounds and choices from the field metadata
    (dict(momentum=1.0), "--momentum must be a number in [0, 1), got 1.0"),
    (dict(learning_rate=0), "--learning_rate must be a number in (0, inf), got 0"),
    (dict(weight_decay=-1e-5), "--weight_decay must be a number in [0, inf), got -1e-05"),
    (dict(seed=-1), "--seed must be an integer >= 0, got -1"),
    (dict(steps=2.5), "--steps must be an integer >= 1, got 2.5"),
    (dict(eval_every=-1), "--eval_every must be an integer >= 0, got -1"),
    (dict(uniform_bits=0), "--uniform_bits must be an integer >= 1, got 0"),
    (dict(max_latency_ms=-1.0), "--max_latency_ms must be a number in [0, inf), got -1.0"),
    (dict(optimizer="rmsprop"), "--optimizer must be one of sgd, adam; got 'rmsprop'"),
    (dict(eval_split="train"), "--eval_split must be one of holdout, test; got 'train'"),
    (dict(data=DataConfig(shuffle_buffer=0)), "--shuffle_buffer must be an integer >= 1"),
    (
        dict(data=DataConfig(augment="flip")),
        "--augment must be one of imagenet, light, cifar, none; got 'flip'",
    ),
    (
        dict(data=DataConfig(eval_crop_fraction=1.5)),
        "DataConfig.eval_crop_fraction must be a number in (0, 1], got 1.5",
    ),  # no flag
    # the rules between settings
    (dict(uniform_bits=2, arch="0,0,0,0"), "drop it or --arch='0,0,0,0'"),
    (dict(final_bn_augment=True), "set --final_bn_batches (its length) too"),
    (dict(min_latency_ms=1.0), "--min_latency_ms needs --latency_table"),
    (dict(arch="0,0,0,0", latency_table="lut.json"), "--latency_table constrains supernet"),
    (dict(arch="0,0,0,0", lr_schedule="complexity_aware"), "use --lr_schedule=linear or cosine"),
    (dict(calr_gamma_max=8.0), "drop it or pass --lr_schedule=complexity_aware"),
    (dict(calr_gamma_max=1.0, lr_schedule="complexity_aware"), "--calr_gamma_max must be"),
    (dict(arch="0,0,0,0", momentum_split=1), "has one path: drop --momentum_split"),
    (dict(momentum_split=1, sampling="fair"), "drop --momentum_split or use another --sampling"),
    (
        dict(momentum_split=1, few_shot_split=1, few_shot_from="/one"),
        "already separate: drop --momentum_split",
    ),
    (dict(momentum_split=-1), "--momentum_split"),
    (dict(momentum_split=1, sampling="rank_pairs"), "drop --momentum_split or use another"),
    (dict(rank_loss_weight=2.0), "add --sampling=rank_pairs or drop them"),
    (dict(sampling="rank_pairs", cost_bins=(1e6, 2e6)), "quantile groups; drop --cost_bins"),
    (dict(sampling="rank_pairs", rank_loss_margin=-0.1), "--rank_loss_margin must be a number"),
    (dict(arch="0,0,0,0", sampling="rank_pairs"), "drop them when retraining one architecture"),
    (dict(arch="0,0,0,0", sample_from="a.txt"), "drop it when retraining one architecture"),
    (dict(sample_from="a.txt", sampling="fair"), "drop --sampling=fair or --sample_from"),
    (dict(sample_from="a.txt", max_macs=1e6), "drop --max_macs (list only"),
    (dict(sample_from=" "), "--sample_from must name a file"),
]


@pytest.mark.parametrize("changes, message", BAD, ids=[str(b[0])[:40] for b in BAD])
def test_a_bad_setting_is_named_with_the_fix(changes, message):
    config = dataclasses.replace(TrainConfig(workdir="/w"), **changes)
    with pytest.raises(ValueError) as e:
        config.validate()
    assert message in str(e.value)


def test_the_defaults_are_valid_and_the_paper_recipe():
    config = TrainConfig(workdir="/w").validate()
    assert (
        config.steps,
        config.batch_size,
        config.optimizer,
        config.learning_rate,
        config.momentum,
        config.weight_decay,
        config.label_smoothing,
    ) == (150_000, 1024, "sgd", 0.5, 0.9, 4e-5, 0.1)


# Every flag file that trains with BN recalibration, and what it calibrates on: (images, batches
# of --eval_batch_size). Written from the files as they were before issue 21 made the setting a
# count of images: --calib_batches x --eval_batch_size (the batch the training evaluation
# recalibrates with), so each file still reads the same images in the same batches.
CALIBRATION = {
    "digits_hard_supernet.cfg": (400, 1),  # 1 x 400
    "latency_quickstart.cfg": (1280, 5),  # 5 x 256
    "nb201_supernet.cfg": (20000, 20),  # 20 x 1000
    "nb201_few_shot.cfg": (20000, 20),  # nb201_supernet.cfg's
    "quant_quickstart.cfg": (1280, 5),  # 5 x 256
    "quant_quickstart_retrain.cfg": (1280, 5),  # quant_quickstart.cfg's (unused: retraining)
    "quant_supernet.cfg": (20480, 80),  # supernet.cfg's
    "quickstart.cfg": (1280, 5),  # 5 x 256 (the split has 1197 images: all of them)
    "quickstart_channels.cfg": (1280, 5),  # quickstart.cfg's
    "supernet.cfg": (20480, 80),  # 80 x 256
    "supernet_channels.cfg": (20480, 80),  # supernet.cfg's
    "supernet_fbnet.cfg": (20480, 80),  # 80 x 256
    "supernet_proxyless.cfg": (20480, 80),  # 80 x 256
    "tiny_latency_supernet.cfg": (150, 1),  # 1 x 150
    "tiny_nb201_few_shot.cfg": (150, 1),  # tiny_nb201_supernet.cfg's
    "tiny_nb201_supernet.cfg": (150, 1),  # 1 x 150
    "tiny_supernet.cfg": (150, 1),  # 1 x 150
}
FLAGS_DIR = Path(__file__).resolve().parents[2] / "flags"


def test_every_training_flag_file_that_sets_calibration_is_listed():
    def sets(text, flag):
        return any(line.startswith(f"--{flag}=") for line in text.splitlines())

    setting = {  # training files (a search file sets --calib_batch_size with --calib_images)
        p.name
        for p in FLAGS_DIR.glob("*.cfg")
        if sets(p.read_text(), "calib_images") and not sets(p.read_text(), "calib_batch_size")
    }
    assert setting and setting <= set(CALIBRATION)
    assert not [p.name for p in FLAGS_DIR.glob("*.cfg") if sets(p.read_text(), "calib_batches")]


@pytest.mark.parametrize("name", sorted(CALIBRATION))
def test_a_flag_file_calibrates_on_the_same_images_and_batches(name, monkeypatch):
    monkeypatch.chdir(FLAGS_DIR.parent)  # nested --flagfile= paths are relative to the repo root
    config = parse_flagfile(name, "--workdir=/w")
    images, batches = CALIBRATION[name]
    assert (config.calib_images, config.num_calib_batches) == (images, batches)
    assert config.num_calib_batches * config.eval_batch_size == images


def test_calibration_images_round_up_to_whole_batches_as_in_the_search():
    from spos_tf.search import SearchConfig

    for images, batch, batches in ((5120, 256, 20), (1, 256, 1), (257, 256, 2), (1197, 256, 5)):
        config = TrainConfig(workdir="/w", calib_images=images, eval_batch_size=batch).validate()
        search = SearchConfig(calib_images=images, calib_batch_size=batch)
        assert config.num_calib_batches == search.num_calib_batches == batches
    assert TrainConfig().num_calib_batches == 20  # the default: 20 batches of 256, as before
    with pytest.raises(ValueError, match="--calib_images must be an integer >= 1, got 0"):
        TrainConfig(workdir="/w", calib_images=0).validate()


def test_an_old_config_json_with_calib_batches_still_reads_and_resumes(tmp_path, data_dir):
    """A run directory written before issue 21 stores calib_batches (batches of
    eval_batch_size): reading it (resume, search, rank, export all go through
    run_dir.load_run_config) gives calib_images = batches x eval_batch_size, and the same flags
    today (--calib_images=150) resume it instead of refusing it as another config."""
    config = resolve(
        parse_flagfile("tiny_supernet.cfg", f"--workdir={tmp_path}", f"--data_dir={data_dir}")
    ).config
    old = {k: v for k, v in config.to_dict().items() if k != "calib_images"}
    old["calib_batches"] = 1
    (tmp_path / run_dir.CONFIG_FILE).write_text(json.dumps(old))
    loaded = run_dir.load_run_config(str(tmp_path))
    assert "calib_batches" not in loaded and loaded["calib_images"] == 150
    assert loaded == config.to_dict()
    assert TrainConfig.from_dict(old).to_dict() == config.to_dict()
    assert TrainConfig.from_dict(old).num_calib_batches == 1
    status = run_dir.check_workdir(
        str(tmp_path),
        config.to_dict(),
        overwrite=False,
        neutral=NEUTRAL_FIELDS,
        defaults=TrainConfig().to_dict(),
    )
    assert status == "resume"
    other = dataclasses.replace(config, calib_images=300)  # 2 batches: another run
    with pytest.raises(run_dir.RunDirError, match="calib_images: 150 -> 300"):
        run_dir.check_workdir(
            str(tmp_path), other.to_dict(), overwrite=False, neutral=NEUTRAL_FIELDS
        )


def test_rank_pairs_resolves_to_the_pair_sampler_and_older_runs_still_resume(tmp_path, data_dir):
    """--sampling=rank_pairs with a MACs range: a RankPairSampler carrying the flags' weight and
    margin whose both paths meet the range, evaluated on uniform paths; a config.json written
    before the rank_loss settings existed resumes under today's defaults."""
    from spos_tf import costs
    from spos_tf.models.rank_pairs import RankPairSampler

    base = resolve(
        parse_flagfile("tiny_supernet.cfg", f"--workdir={tmp_path}", f"--data_dir={data_dir}")
    )
    macs = [costs.macs(base.space, base.sampler(s)) for s in range(8)]
    low, high = min(macs), max(macs)
    resolved = resolve(
        parse_flagfile(
            "tiny_supernet.cfg",
            f"--workdir={tmp_path}",
            f"--data_dir={data_dir}",
            "--sampling=rank_pairs",
            "--rank_loss_weight=0.5",
            "--rank_loss_margin=0.1",
            f"--min_macs={low}",
            f"--max_macs={high}",
        )
    )
    sampler = resolved.sampler
    assert isinstance(sampler, RankPairSampler) and (sampler.weight, sampler.margin) == (0.5, 0.1)
    for step in range(10):
        for arch in sampler.paths(step):
            assert low <= costs.macs(resolved.space, arch) <= high
    assert not isinstance(resolved.eval_sampler, RankPairSampler)

    old = {
        k: v
        for k, v in base.config.to_dict().items()
        if k not in ("rank_loss_weight", "rank_loss_margin")
    }
    (tmp_path / run_dir.CONFIG_FILE).write_text(json.dumps(old))
    status = run_dir.check_workdir(
        str(tmp_path),
        base.config.to_dict(),
        overwrite=False,
        neutral=NEUTRAL_FIELDS,
        defaults=TrainConfig().to_dict(),
    )
    assert status == "resume"


def test_sample_from_trains_the_listed_paths_and_evaluates_uniform_ones(tmp_path, data_dir):
    """--sample_from: a ListSampler over the file's architectures (comments and repeats dropped),
    stored as an absolute path, with the evaluation paths still drawn from the whole space; a
    missing file or a line of another space is named."""
    from spos_tf.models.sampling import ListSampler

    listed = tmp_path / "finalists.txt"
    listed.write_text("# finalists\n3,3,3,1,3,3\n\n3,1,2,3,3,3  # second\n3,3,3,1,3,3\n")
    resolved = resolve(
        parse_flagfile(
            "tiny_nb201_supernet.cfg",
            f"--workdir={tmp_path / 'w'}",
            f"--data_dir={data_dir}",
            f"--sample_from={listed}",
        )
    )
    sampler = resolved.sampler
    assert isinstance(sampler, ListSampler)
    assert [str(a) for a in sampler.archs] == ["3,3,3,1,3,3", "3,1,2,3,3,3"]
    assert {str(sampler(s)) for s in range(40)} == {"3,3,3,1,3,3", "3,1,2,3,3,3"}
    assert resolved.config.sample_from == str(listed.resolve())
    evaluated = {str(resolved.eval_sampler(s)) for s in range(40)}
    assert not evaluated <= {"3,3,3,1,3,3", "3,1,2,3,3,3"}  # uniform over the space
    for text, message in [(None, "--sample_from="), ("3,3,3\n", "finalists.txt:1")]:
        if text is None:
            listed.unlink()
        else:
            listed.write_text(text)
        with pytest.raises(ValueError, match=message):
            resolve(
                parse_flagfile(
                    "tiny_nb201_supernet.cfg",
                    f"--workdir={tmp_path / 'w'}",
                    f"--data_dir={data_dir}",
                    f"--sample_from={listed}",
                )
            )


def test_distinct_sampling_trains_canonical_cells_and_evaluates_uniform_ones(tmp_path, data_dir):
    """--sampling=distinct: a DistinctSampler that keeps the MACs range, draws canonical cells
    (no op on an edge that cannot reach the output), and leaves the evaluation paths uniform."""
    from spos_tf import costs
    from spos_tf.models.sampling import DistinctSampler

    resolved = resolve(
        parse_flagfile(
            "tiny_nb201_supernet.cfg",
            f"--workdir={tmp_path}",
            f"--data_dir={data_dir}",
            "--sampling=distinct",
            "--min_macs=1",
        )
    )
    space, sampler = resolved.space, resolved.sampler
    assert isinstance(sampler, DistinctSampler) and len(sampler.networks) == 9445
    draws = [sampler(s) for s in range(300)]
    assert all(space.canonical(a) == a and costs.macs(space, a) >= 1 for a in draws)
    evaluated = [resolved.eval_sampler(s) for s in range(300)]
    assert type(resolved.eval_sampler) is ArchSampler
    assert any(space.canonical(a) != a for a in evaluated)  # uniform: about 4 in 10 are not
    with pytest.raises(ValueError, match="--few_shot_split trains each sub-supernet"):
        resolve(
            parse_flagfile(
                "tiny_nb201_supernet.cfg",
                f"--workdir={tmp_path}",
                f"--data_dir={data_dir}",
                "--sampling=distinct",
                "--few_shot_split=3",
                f"--few_shot_from={tmp_path}",
            )
        )
