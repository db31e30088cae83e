"""The apps on a mixed-precision space: search under a kWkA BitOps budget (``--bitops_budget``),
the uniform kWkA QAT baseline (``train --uniform_bits``), the side-by-side table
(``spos_tf.report_quant``) and the quantization flag files.

Runs the quick-start flag files (the tiny twins of ``flags/quant_{supernet,search,retrain}.cfg``)
with fewer steps and trials at 8x8 on the embedded digits: a supernet, a search, two retrainings
and one app start-up. About 1 minute on 2 CPU cores (measured 58 s at load average ~2).
"""

import contextlib
import csv
import dataclasses
import io
import json
import os
from pathlib import Path

import pytest
from absl import flags

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from spos_tf import costs
from spos_tf.report_quant import __main__ as report_quant
from spos_tf.report_quant import report as quant_report
from spos_tf.runs import run_dir
from spos_tf.search import __main__ as search
from spos_tf import search as search_lib
from spos_tf.search import run as search_run
from spos_tf import spaces
from spos_tf.train import __main__ as train
from spos_tf import train as train_lib
from spos_tf.spaces.space import GENE_KINDS, mid_channels

from _apps import run_app
from _train_checks import standalone_accuracy

REPO = Path(__file__).resolve().parents[2]
FLAGS_DIR = REPO / "flags"
BUDGET_BITS = 3  # as in flags/quant_quickstart_search.cfg and flags/quant_search.cfg
TINY_TRAIN = (
    "--image_size=8",
    "--steps=20",
    "--checkpoint_every=20",
    "--log_every=10",
    "--eval_paths=2",
    "--calib_images=256",  # 1 batch of flags/quant_quickstart.cfg's --eval_batch_size=256
    "--eval_batches=1",
    "--noprogress",
)
TINY_RETRAIN = TINY_TRAIN[:4] + ("--eval_batches=1", "--final_bn_batches=1", "--noprogress")
TINY_SEARCH = (
    "--population_size=6",
    "--num_parents=2",
    "--num_crossover=2",
    "--num_mutation=2",
    "--max_trials=12",
    "--calib_images=64",
    "--calib_batch_size=32",
    "--holdout_images=100",
    "--eval_batch_size=100",
    "--noprogress",
)
TRIALS = 12
pytestmark = pytest.mark.filterwarnings("ignore:currentThread|getName:DeprecationWarning")


def parse_train(*args):
    fv = flags.FlagValues()
    train.define_flags(fv)
    with contextlib.chdir(REPO):  # nested --flagfile= paths are relative to the repository root
        fv(["train", *args])
    return train.config_from_flags(fv)


def parse_search(*args):
    fv = flags.FlagValues()
    search.define_flags(fv)
    with contextlib.chdir(REPO):
        fv(["search", *args])
    return search.config_from_flags(fv)


def run_train(config):
    return train_lib.run(dataclasses.replace(config, progress=False), stream=io.StringIO())


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The folder layout of tools/quant_quickstart.sh: supernet/, search/, retrain_*/."""
    return tmp_path_factory.mktemp("quant")


@pytest.fixture(scope="module")
def supernet_dir(base, data_dir):
    workdir = str(base / "supernet")
    run_train(
        parse_train(
            "--flagfile=flags/quant_quickstart.cfg",
            f"--workdir={workdir}",
            f"--data_dir={data_dir}",
            *TINY_TRAIN,
        )
    )
    return workdir


@pytest.fixture(scope="module")
def space(supernet_dir):
    return run_dir.space_from_config(run_dir.load_run_config(supernet_dir))


@pytest.fixture(scope="module")
def searched(base, supernet_dir):
    """The search workdir of ``--bitops_budget=3w3a`` (flags/quant_quickstart_search.cfg)."""
    workdir = base / "search"
    config = parse_search(
        "--flagfile=flags/quant_quickstart_search.cfg",
        f"--supernet_dir={supernet_dir}",
        f"--workdir={workdir}",
        *TINY_SEARCH,
    )
    assert config.bitops_budget == f"{BUDGET_BITS}w{BUDGET_BITS}a"
    search_run.run(config, stream=io.StringIO())
    return workdir


@pytest.fixture(scope="module")
def retrained(base, data_dir, searched):
    """``{name: workdir}`` of the QAT retraining of the searched network and of uniform 3W3A."""
    common = (
        "--flagfile=flags/quant_quickstart_retrain.cfg",
        f"--data_dir={data_dir}",
        *TINY_RETRAIN,
    )
    out = {"searched": base / "retrain_searched", "3w3a": base / "retrain_3w3a"}
    run_train(
        parse_train(
            *common, f"--arch={searched / search_lib.BEST_FILE}", f"--workdir={out['searched']}"
        )
    )
    run_train(parse_train(*common, f"--uniform_bits={BUDGET_BITS}", f"--workdir={out['3w3a']}"))
    return out


def expected_bitops(space, arch):
    """BitOps written out from the ResNet layout (not through spos_tf.spaces.ops / CostTable): per
    block conv1 (3x3, stride), conv2 (3x3) and the 1x1 shortcut where the shape changes, at
    the block's weight x activation bits; the stem conv and the FC at 8 x 8 bits."""
    assert space.family == "resnet" and space.image_size < 160  # 3x3 stem, no max-pool
    side = lambda hw, s: -(-hw // s)  # noqa: E731  (SAME padding)
    hw = side(space.image_size, space.stem_stride)
    total = hw * hw * 9 * 3 * space.stem_channels * 64
    cin = space.stem_channels
    blocks = iter(space.decode(arch))
    for stage in space.stages:
        for i in range(stage.repeats):
            choice, stride, cout = next(blocks), (stage.stride if i == 0 else 1), stage.channels
            mid, out = mid_channels(space, cout, choice["channel"]), side(hw, stride)
            macs = out * out * 9 * (cin * mid + mid * cout)
            if stride != 1 or cin != cout:
                macs += out * out * cin * cout
            total += macs * choice["wbits"] * choice["abits"]
            hw, cin = out, cout
    return total + cin * space.num_classes * 64


# ------------------------------------------------------------------------------- search
@pytest.mark.slow
def test_budget_search_meets_the_uniform_3w3a_bitops(searched, space):
    assert space.quantized and space.name == "resnet18_mixed_precision"
    budget = costs.uniform_bitops(space, BUDGET_BITS)
    assert budget == expected_bitops(space, costs.uniform_arch(space, bits=BUDGET_BITS))
    best = json.loads((searched / search_lib.BEST_FILE).read_text())
    arch = space.parse(best["arch"])
    assert best["constraints"] == {"bitops": budget}
    assert best["costs"]["bitops"] == expected_bitops(space, arch) <= budget
    # the budget is binding: the uniform 4W4A network and the all-4-bit corner are over it
    assert costs.uniform_bitops(space, 4) > budget

    with open(searched / search_lib.HISTORY_FILE) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == search_lib.history_columns(space) and "bitops" in rows[0]
    assert len(rows) == TRIALS and len({r["arch"] for r in rows}) == TRIALS
    for r in rows:
        arch = space.parse(r["arch"])
        assert int(r["bitops"]) == expected_bitops(space, arch) <= budget, r
        assert int(r["macs"]) == costs.macs(space, arch)
    assert len({r["bitops"] for r in rows}) > 1  # bit widths were searched, not fixed
    assert best["accuracy"] == max(float(r["accuracy"]) for r in rows)


@pytest.mark.parametrize("budget, message", [("3w4a", "same k"), ("x", "kWkA"), ("0w0a", "kWkA")])
def test_bad_budgets_are_refused_before_anything_is_written(budget, message, tmp_path):
    workdir = tmp_path / "search"
    config = parse_search(
        "--flagfile=flags/quant_quickstart_search.cfg",
        f"--supernet_dir={tmp_path / 'none'}",
        f"--workdir={workdir}",
        f"--bitops_budget={budget}",
    )
    with pytest.raises(ValueError, match=message) as e:
        search_run.run(config)
    assert repr(budget) in str(e.value)
    assert not workdir.exists()


def test_budget_and_max_bitops_together_are_refused(tmp_path):
    config = parse_search(
        "--flagfile=flags/quant_quickstart_search.cfg",
        "--supernet_dir=/x",
        f"--workdir={tmp_path / 's'}",
        "--max_bitops=1e9",
    )
    with pytest.raises(ValueError, match="not both"):
        config.validate()


def test_budget_on_a_float_space_is_refused_before_anything_is_written(tmp_path):
    # A float supernet's run config is all the check needs (it comes before the checkpoint).
    float_dir = tmp_path / "float_supernet"
    run_dir.write_config(
        str(float_dir),
        {
            "space": "shufflenet_oneshot",
            "arch": None,
            "seed": 0,
            "space_overrides": {
                "image_size": 16,
                "num_classes": 10,
                "width": 0.25,
                "repeats": [1, 1, 1, 1],
            },
        },
    )
    workdir = tmp_path / "search"
    config = parse_search(
        "--flagfile=flags/quant_quickstart_search.cfg",
        f"--supernet_dir={float_dir}",
        f"--workdir={workdir}",
    )
    with pytest.raises(ValueError, match="needs a quantized space.*shufflenet_oneshot"):
        search_run.run(config)
    assert not workdir.exists()


@pytest.mark.slow
def test_app_exits_2_on_a_bad_budget(supernet_dir, tmp_path):
    workdir = tmp_path / "search"
    proc = run_app(
        "search",
        "--flagfile=flags/quant_quickstart_search.cfg",
        f"--supernet_dir={supernet_dir}",
        f"--workdir={workdir}",
        "--bitops_budget=3w4a",
        check=False,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "error: --bitops_budget must be kWkA" in proc.stderr and "'3w4a'" in proc.stderr
    assert not workdir.exists()


# ------------------------------------------------------------------------------- retraining
@pytest.mark.slow
def test_uniform_bits_retrains_the_uniform_arch(retrained, space):
    workdir = str(retrained["3w3a"])
    saved = run_dir.load_run_config(workdir)
    uniform = costs.uniform_arch(space, bits=BUDGET_BITS)
    assert saved["arch"] == str(uniform) and saved["uniform_bits"] is None
    decoded = space.decode(uniform)
    assert {(c["channel"], c["wbits"], c["abits"]) for c in decoded} == {(1.0, 3, 3)}
    restored_space, model, _ = run_dir.restore_model(workdir)
    assert restored_space == space and model.arch == uniform
    with open(os.path.join(workdir, run_dir.METRICS_FILE)) as f:
        records = [json.loads(line) for line in f if line.strip()]
    assert {r["arch_bitops"] for r in records if "arch_bitops" in r} == {
        float(costs.uniform_bitops(space, BUDGET_BITS))
    }
    assert records[-1]["final"]
    assert records[-1]["val_accuracy"] == pytest.approx(standalone_accuracy(workdir), abs=1e-9)


@pytest.mark.slow
def test_searched_retrain_is_best_json(retrained, searched, space):
    """``train --arch=<search>/best.json`` trained best.json's network: the checkpoint restores
    into that architecture, every logged window trained at its BitOps (computed here from the
    layout, apart from the trainer's cost table), and the final accuracy is the saved network's
    (evaluated here)."""
    best = json.loads((searched / search_lib.BEST_FILE).read_text())
    arch = space.parse(best["arch"])
    workdir = str(retrained["searched"])
    restored_space, model, saved = run_dir.restore_model(workdir)
    assert restored_space == space and model.arch == arch and saved["uniform_bits"] is None
    with open(os.path.join(workdir, run_dir.METRICS_FILE)) as f:
        records = [json.loads(line) for line in f if line.strip()]
    assert {r["arch_bitops"] for r in records if "arch_bitops" in r} == {
        float(expected_bitops(space, arch))
    }
    assert records[-1]["final"]
    assert records[-1]["val_accuracy"] == pytest.approx(standalone_accuracy(workdir), abs=1e-9)


def test_uniform_bits_refusals(data_dir, tmp_path):
    args = (
        "--flagfile=flags/quant_quickstart_retrain.cfg",
        f"--workdir={tmp_path / 'wd'}",
        f"--data_dir={data_dir}",
    )
    with pytest.raises(ValueError, match="--uniform_bits=3 .*pass one of them"):
        parse_train(*args, "--uniform_bits=3", "--arch=0,0,0,0|0,0,0,0|0,0,0,0").validate()
    with pytest.raises(train_lib.ConfigError, match="5 bits is not a choice"):
        train_lib.run(parse_train(*args, "--uniform_bits=5"))
    with pytest.raises(train_lib.ConfigError, match="needs a quantized space"):
        train_lib.run(parse_train(*args, "--uniform_bits=3", "--space=shufflenet_oneshot"))
    with pytest.raises(ValueError, match="--final_bn_batches applies to retraining"):
        parse_train(*args).validate()  # neither --arch nor --uniform_bits
    assert not (tmp_path / "wd").exists()


# ------------------------------------------------------------------------------- the table
@pytest.mark.slow
def test_report_rows_match_the_files(base, retrained, searched, space, capsys):
    best = json.loads((searched / search_lib.BEST_FILE).read_text())
    budget = costs.uniform_bitops(space, BUDGET_BITS)
    table = quant_report.rows(str(base))
    assert [r["network"] for r in table] == ["searched (mixed precision)", "uniform 3W3A"]
    for row, workdir in zip(table, (retrained["searched"], retrained["3w3a"])):
        arch = space.parse(run_dir.load_run_config(str(workdir))["arch"])
        with open(workdir / run_dir.METRICS_FILE) as f:
            final = [json.loads(line) for line in f if line.strip()][-1]
        assert row["arch"] == str(arch)
        assert row["bitops"] == expected_bitops(space, arch)
        assert row["macs"] == costs.macs(space, arch)
        assert row["budget"] == budget and row["within_budget"] is True
        assert row["accuracy"] == final["val_accuracy"]
    assert table[0]["arch"] == best["arch"] and table[0]["supernet_accuracy"] == best["accuracy"]
    assert table[1]["bitops"] == budget and "supernet_accuracy" not in table[1]

    assert report_quant.main([str(base)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 + len(table)
    for line, row in zip(lines[2:], table):
        cells = [c.strip() for c in line.replace("\\|", "\0").strip("|").split("|")]
        assert len(cells) == 7, line  # "|" of the arch text escaped, not a cell border
        assert cells[1] == f"`{row['arch']}`".replace("|", "\0")
        assert cells[3] == f"{row['bitops'] / 1e6:.1f}"
        assert cells[4] == f"{row['bitops'] / budget:.3f}"
        assert cells[6] == f"{100 * row['accuracy']:.1f}%"


def test_report_without_runs_is_an_error(tmp_path, capsys):
    assert report_quant.main([str(tmp_path)]) == 2
    assert "no retrained networks" in capsys.readouterr().err


# ------------------------------------------------------------------------------- flag files
QUANT_FLAG_FILES = {  # file: (app, extra flags it needs, its tiny twin)
    "quant_supernet.cfg": ("train", (), "quant_quickstart.cfg"),
    "quant_search.cfg": ("search", ("--supernet_dir=/sn",), "quant_quickstart_search.cfg"),
    "quant_retrain.cfg": ("train", ("--uniform_bits=3",), "quant_quickstart_retrain.cfg"),
    "quant_quickstart.cfg": ("train", (), None),
    "quant_quickstart_search.cfg": ("search", ("--supernet_dir=/sn",), None),
    "quant_quickstart_retrain.cfg": ("train", ("--arch=0,0,0,0|0,0,0,0|0,0,0,0",), None),
}


@pytest.mark.parametrize("name", sorted(QUANT_FLAG_FILES))
def test_quant_flag_file_header_and_parse(name):
    app, extra, twin = QUANT_FLAG_FILES[name]
    text = (FLAGS_DIR / name).read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for key in ("Command:", "Run time:", "Expected:"):
        assert key in header, f"{name}: header lacks {key!r}"
    assert f"--flagfile=flags/{name}" in header and "MEASURE" not in header
    if twin:
        assert f"Tiny twin: flags/{twin}" in header
    parse = parse_train if app == "train" else parse_search
    config = parse(f"--flagfile=flags/{name}", "--workdir=/x", *extra).validate()
    if app == "train":
        assert config.space == "resnet18_mixed_precision"
    else:
        assert config.bitops_budget == f"{BUDGET_BITS}w{BUDGET_BITS}a" and not config.limits


def test_imagenet_files_keep_the_paper_recipe_and_twins_the_space():
    sup = parse_train("--flagfile=flags/quant_supernet.cfg", "--workdir=/x")
    ret = parse_train("--flagfile=flags/quant_retrain.cfg", "--workdir=/x", "--uniform_bits=2")
    paper = parse_train("--flagfile=flags/supernet.cfg", "--workdir=/x")
    keys = (
        "optimizer",
        "learning_rate",
        "lr_schedule",
        "momentum",
        "weight_decay",
        "label_smoothing",
        "batch_size",
    )
    for config in (sup, ret):
        assert (config.data.name, config.data.augment) == ("imagenet2012", "imagenet")
        assert config.space_overrides["image_size"] == 224
        assert [getattr(config, k) for k in keys] == [getattr(paper, k) for k in keys]
    assert (sup.steps, ret.steps) == (150_000, 300_000) and ret.final_bn_batches > 0
    twin = parse_train(
        "--flagfile=flags/quant_quickstart_retrain.cfg", "--workdir=/x", "--uniform_bits=2"
    )
    assert twin.space == ret.space and twin.data.name == "spos_digits" and twin.final_bn_batches
    full = spaces.get(sup.space, image_size=224)
    assert [len(full.choices[k]) for k in GENE_KINDS] == [1, 3, 4, 4]
