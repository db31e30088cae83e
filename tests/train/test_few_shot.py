"""Few-shot supernets (spos_tf.train.few_shot, issue 20 item 3): the sub-supernets own disjoint parts
of the space that cover it, start from the one-shot weights, resume, and score through the search
app exactly as their own run directories score as one-shot supernets.

Starts from the session's flags/tiny_nb201_supernet.cfg run (conftest.py's ``nb201``, shared with
the rank tests) and trains flags/tiny_nb201_few_shot.cfg (5 sub-supernets of 4 steps) once,
in-process; about 3-5 minutes on 2 CPU cores, mostly tracing the
5 sub-supernets' steps and scoring loops.
"""

import contextlib
import csv
import dataclasses
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import tensorflow as tf
from spos_tf.runs import config_flags
from spos_tf.train import few_shot
from spos_tf.spaces import nasbench201
from spos_tf.rank import __main__ as rank
from spos_tf.rank import run as rank_lib
from spos_tf.runs import run_dir
from spos_tf.search import run as search_run
from spos_tf.search import tuner as search_tuner
from spos_tf import spaces
from spos_tf.train import loop as train_loop
from spos_tf.models.sampling import ArchSampler, GeneSampler, gene_of, split_choices, split_kind
from spos_tf.spaces.space import Architecture
from spos_tf.train.config import ConfigError, TrainConfig

from _files import snapshot
from conftest import import_benchmark
from _search import tiny_config
from _train_checks import checkpoint_values, parse_flagfile, restored_optimizer

REPO = Path(__file__).resolve().parents[2]
NB201_SEARCH = REPO / "flags" / "tiny_nb201_search.cfg"
SPLIT = 3  # flags/tiny_nb201_few_shot.cfg's --few_shot_split


def _parse(name, *extra):
    with contextlib.chdir(REPO):  # nested --flagfile= paths are relative to the repository root
        return parse_flagfile(name, *extra)


# ------------------------------------------------------------------------------- ownership
def _all_archs(space):
    """Every architecture of a small single-gene-kind space."""
    sizes = [len(space.allowed_ops(b)) for b in range(space.num_blocks)]
    for flat in np.ndindex(*sizes):
        yield Architecture((tuple(space.allowed_ops(b)[i] for b, i in enumerate(flat)),))


SPACES = {  # the tiny twins' spaces: NAS-Bench-201's cell and a ShuffleNet block space
    "nasbench201": dict(image_size=8, width=0.25, repeats=(1, 1, 1)),
    "shufflenet_oneshot": dict(image_size=8, width=0.125, repeats=(1, 1, 1, 1)),
}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_sub_supernets_own_disjoint_parts_whose_union_is_the_space(name):
    space = spaces.get(name, **SPACES[name])
    for block in range(space.num_blocks):
        choices = split_choices(space, block)
        assert choices == tuple(range(len(space.ops)))
        owned = {c: set() for c in choices}
        for arch in _all_archs(space):
            owned[gene_of(space, arch, block)].add(arch)  # one owner per architecture
        assert sum(map(len, owned.values())) == space.size  # a partition of the whole space
        assert all(len(v) == space.size // len(choices) for v in owned.values())
        for c in choices:
            sampler = GeneSampler(space, 7, block, c)
            drawn = [sampler(step) for step in range(200)]
            assert all(space.validate(a) in owned[c] for a in drawn)  # only its own part
            # the other blocks are drawn as ArchSampler draws them: (seed, step) only
            plain = ArchSampler(space, 7)
            for step in (0, 5, 199):
                genes = list(plain(step).genes[0])
                genes[block] = c
                assert drawn[step] == Architecture((tuple(genes),))
            other = [b for b in range(space.num_blocks) if b != block]
            assert {a.genes[0][other[0]] for a in drawn} == set(choices)  # not stuck
            assert sampler(11) == GeneSampler(space, 7, block, c)(11)  # a function of (seed, step)


def test_split_of_a_block_and_channel_space_fixes_the_op_and_samples_the_channels():
    space = spaces.get("shufflenet_oneshot_blocks_channels", image_size=8, width=0.125)
    assert split_kind(space) == "op"
    archs = [GeneSampler(space, 0, 2, 1)(s) for s in range(50)]
    assert {a.genes[0][2] for a in archs} == {1}
    assert len({a.genes[1][2] for a in archs}) > 1  # the channel gene of that block still varies
    assert all(space.validate(a) for a in archs)


def test_bad_splits_are_refused_with_the_fix():
    space = spaces.get("nasbench201", **SPACES["nasbench201"])
    with pytest.raises(ValueError, match=r"--few_shot_split=6 .* pass one of 0\.\.5"):
        split_choices(space, 6)
    with pytest.raises(ValueError, match=r"choice 5 is not one of block 3's op choices"):
        GeneSampler(space, 0, 3, 5)
    base = TrainConfig(workdir="/w", space="nasbench201")
    cases = [
        (dict(few_shot_split=3), "needs --few_shot_from"),
        (dict(few_shot_from="/one"), "pass --few_shot_split"),
        (dict(few_shot_split=3, few_shot_from="/one", arch="0,1,2,3,4,0"), "drop it when retra"),
        (dict(few_shot_split=3, few_shot_from="/one", sampling="fair"), "drop --sampling=fair"),
        (dict(few_shot_split=3, few_shot_from="/w"), "--workdir must differ from --few_shot_"),
        (dict(few_shot_split=-1, few_shot_from="/one"), "--few_shot_split must be an integer"),
    ]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(base, **changes).validate()


def test_flag_files_split_edge_3_with_the_one_shot_recipe():
    recipe = ("optimizer", "learning_rate", "momentum", "weight_decay", "data")
    for name, supernet, steps in [
        ("nb201_few_shot.cfg", "nb201_supernet.cfg", 1950),  # 10 epochs of 25,000 at batch 128
        ("tiny_nb201_few_shot.cfg", "tiny_nb201_supernet.cfg", 4),
    ]:
        split = _parse(name, "--workdir=/w", "--few_shot_from=/one").validate()
        one_shot = _parse(supernet, "--workdir=/w")
        assert (split.few_shot_split, split.steps, split.space) == (SPLIT, steps, "nasbench201")
        assert split.space_overrides == one_shot.space_overrides
        assert [getattr(split, k) for k in recipe] == [getattr(one_shot, k) for k in recipe]
        # the one-shot recipe trains with CaLR; the split keeps the cosine rate it was measured
        # with (CaLR's per-path decay is not what few-shot's sub-supernets were measured with)
        assert (one_shot.lr_schedule, split.lr_schedule) == ("complexity_aware", "cosine")
        # the one-shot run stops part-way down its schedule; each sub-supernet runs its own
        # schedule to the end
        assert one_shot.lr_schedule_steps > one_shot.steps
        assert split.lr_schedule_steps == split.steps
        if not name.startswith("tiny"):  # 10 epochs of the 25,000 images of train[:50%]
            assert split.steps == 10 * (25_000 // split.batch_size)


# ------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def one_shot(nb201):
    """The tiny NAS-Bench-201 one-shot supernet (flags/tiny_nb201_supernet.cfg): its workdir, the
    session's run that the rank tests share (conftest.py's ``nb201``), only read here."""
    return str(nb201[0])


def few_shot_config(workdir, one_shot, data_dir, *extra):
    return _parse(
        "tiny_nb201_few_shot.cfg",
        f"--workdir={workdir}",
        f"--few_shot_from={one_shot}",
        f"--data_dir={data_dir}",
        "--noprogress",
        *extra,
    )


@pytest.fixture(scope="module")
def split(one_shot, tmp_path_factory, data_dir):
    """flags/tiny_nb201_few_shot.cfg trained uninterrupted: ``(workdir, summary, output)``."""
    workdir = str(tmp_path_factory.mktemp("few_shot") / "split")
    out = io.StringIO()
    summary = train_loop.run(few_shot_config(workdir, one_shot, data_dir), stream=out)
    return workdir, summary, out.getvalue()


def _slots(optimizer, variable) -> list:
    """The optimizer slots of ``variable`` as numpy (none for a non-trainable one)."""
    if not variable.trainable:
        return []
    index = optimizer._index_dict[optimizer._var_key(variable)]
    return [optimizer._slots[name][index].numpy() for name in optimizer.slot_names]


def _edge_units(model, block):
    """``{op index: [weight dicts of that op at edge `block` of every cell]}``."""
    units = {}
    for cb in model.choice_blocks:
        if cb.block == block:
            for o, unit in enumerate(cb.units.values()):
                units.setdefault(o, []).append(unit)
    return units


@pytest.mark.slow
def test_layout_and_each_sub_supernet_samples_only_its_own_part(split, one_shot):
    workdir, summary, out = split
    layout = few_shot.load_layout(workdir)
    latest = run_dir.latest_checkpoint(run_dir.checkpoint_dir(one_shot))
    assert (layout.gene, layout.kind, layout.choices, layout.steps) == (
        SPLIT,
        "op",
        (0, 1, 2, 3, 4),
        4,
    )
    assert (layout.source, layout.from_checkpoint, layout.from_step) == (one_shot, latest, 12)
    assert sorted(os.listdir(workdir)) == ["few_shot.json"] + [f"sub_{c}" for c in range(5)]
    accuracy = {}
    for c in layout.choices:
        config = run_dir.load_run_config(layout.sub_dir(c))
        assert (config["few_shot_split"], config["few_shot_choice"]) == (SPLIT, c)
        assert (
            config["few_shot_from"] == one_shot and config["steps"] == 4 and config["arch"] is None
        )
        records = run_dir.MetricsLog(layout.sub_dir(c)).read()
        final = records[-1]
        assert final["final"] and final["step"] == 4
        assert all(
            Architecture.from_text(p["arch"]).genes[0][SPLIT] == c for p in final["val_paths"]
        )
        accuracy[str(c)] = final["val_accuracy"]
        assert tf.train.latest_checkpoint(run_dir.checkpoint_dir(layout.sub_dir(c))).endswith(
            "ckpt-4"
        )
    assert summary["sub_val_accuracy"] == accuracy
    assert summary["val_accuracy"] == pytest.approx(np.mean(list(accuracy.values())))
    assert out.count("Training the supernet") == 5 and "into 5 sub-supernets" in out


@pytest.mark.slow
def test_sub_supernets_start_from_the_one_shot_weights_with_a_fresh_optimizer(split, one_shot):
    """Edge SPLIT's ops other than c never run in sub-supernet c, so the masked update leaves
    them as they were at its start: they equal the one-shot checkpoint's (weights and BN
    statistics, bit for bit) while their momentum slots are exactly 0 (fresh, not copied)."""
    workdir = split[0]
    _, source, _ = run_dir.restore_model(one_shot)
    source_slots = restored_optimizer(one_shot, source)
    source_units = _edge_units(source, SPLIT)
    copied = moved = one_shot_momentum = 0
    for c in few_shot.load_layout(workdir).choices:
        _, model, _ = run_dir.restore_model(few_shot.sub_dir(workdir, c))
        optimizer = restored_optimizer(few_shot.sub_dir(workdir, c), model)
        for o, units in _edge_units(model, SPLIT).items():
            for unit, before in zip(units, source_units[o]):
                now, then = unit.weight_dict(), before.weight_dict()
                same = [np.array_equal(v.numpy(), then[k].numpy()) for k, v in now.items()]
                if o != c:
                    assert all(same), f"sub {c}: op {o} of edge {SPLIT} moved"
                    copied += len(same)
                    for v in now.values():
                        assert not any(np.any(s) for s in _slots(optimizer, v))
                elif any(k.endswith("kernel") for k in now):
                    assert not all(same), f"sub {c}: its own op {o} did not train"
                    moved += 1
    for units in source_units.values():  # the one-shot run did move some of these slots
        for unit in units:
            for v in unit.weight_dict().values():
                one_shot_momentum += any(np.any(s) for s in _slots(source_slots, v))
    assert copied > 20 and moved >= 2 and one_shot_momentum > 0


@pytest.mark.slow
def test_a_killed_split_resumes_to_the_weights_of_an_uninterrupted_one(
    split, one_shot, tmp_path, data_dir
):
    """The state a kill right after sub-supernet 3's first checkpoint leaves (sub 0-2 finished,
    sub 3 at its step-2 checkpoint with metrics written past it, sub 4 not started), built from
    the uninterrupted split's files (train_loop's own resume after a real SIGKILL is
    tests/train/test_train_loop.py's); rerunning the command skips 0-2, resumes 3, starts 4 from the
    recorded one-shot checkpoint, and ends with the uninterrupted split's tensors."""
    ref = split[0]
    work = str(tmp_path / "killed")
    shutil.copytree(ref, work)
    shutil.rmtree(few_shot.sub_dir(work, 4))
    ckpt = run_dir.checkpoint_dir(few_shot.sub_dir(work, 3))
    for path in Path(ckpt).glob("ckpt-4.*"):
        path.unlink()
    Path(ckpt, "checkpoint").write_text(  # the index as CheckpointManager wrote it at step 2
        'model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-2"\n'
    )
    finished = {c: snapshot(few_shot.sub_dir(work, c), mtimes=False) for c in (0, 1, 2)}

    out = io.StringIO()
    summary = train_loop.run(few_shot_config(work, one_shot, data_dir), stream=out)
    text = out.getvalue()
    assert text.count("already trained for 4 steps") == 3
    assert "Resuming the supernet" in text and "at step 2/4" in text and "at step 0/4" in text
    assert summary == split[1]
    for c in (0, 1, 2):  # skipped: config.json and flags.txt name the new workdir, nothing else
        now = snapshot(few_shot.sub_dir(work, c), mtimes=False)
        for name in ("config.json", "flags.txt"):
            now.pop(name, None), finished[c].pop(name, None)
        assert now == finished[c]
    for c in (3, 4):
        a = checkpoint_values(
            os.path.join(run_dir.checkpoint_dir(few_shot.sub_dir(ref, c)), "ckpt-4")
        )
        b = checkpoint_values(
            os.path.join(run_dir.checkpoint_dir(few_shot.sub_dir(work, c)), "ckpt-4")
        )
        assert a.keys() == b.keys() and len([k for k in a if k.startswith("model/")]) > 50
        different = [k for k in a if not np.array_equal(a[k], b[k])]
        assert not different, f"sub {c}: {len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.slow
def test_changed_settings_are_refused_and_change_nothing(split, one_shot, data_dir, tmp_path):
    workdir = split[0]
    before = snapshot(workdir)
    for extra, message in [
        (["--learning_rate=0.2"], r"holds a run with other settings \(learning_rate: 0.1 -> 0.2"),
        (
            ["--steps=5", "--lr_schedule_steps=5"],
            r"holds a few-shot split with other settings \(steps: 4 -> 5",
        ),
        (["--few_shot_split=2"], r"few-shot split with other settings \(gene: 3 -> 2"),
    ]:
        with pytest.raises(run_dir.RunDirError, match=message):
            train_loop.run(
                few_shot_config(workdir, one_shot, data_dir, *extra), stream=io.StringIO()
            )
    with pytest.raises(ConfigError, match=r"another space \(width: 0\.25 there, 0\.5 here\)"):
        train_loop.run(
            few_shot_config(str(tmp_path / "new"), one_shot, data_dir, "--width=0.5"),
            stream=io.StringIO(),
        )
    with pytest.raises(run_dir.RunDirError, match="holds a few-shot split"):  # a plain run there
        train_loop.run(
            _parse("tiny_nb201_supernet.cfg", f"--workdir={workdir}", f"--data_dir={data_dir}"),
            stream=io.StringIO(),
        )
    assert snapshot(workdir) == before and not (tmp_path / "new").exists()


# ------------------------------------------------------------------------------- scoring
@pytest.mark.slow
def test_the_search_app_scores_each_architecture_on_its_owning_sub_supernet(split, tmp_path):
    workdir = split[0]

    def search_config(supernet_dir, out, *extra):
        return tiny_config(supernet_dir, out, "--noprogress", *extra, flagfile=NB201_SEARCH)

    config = search_config(workdir, tmp_path / "search", "--algorithm=random", "--max_trials=4")
    result = search_run.run(config, stream=io.StringIO())
    rows = result["rows"]
    assert len(rows) == 4
    space = run_dir.space_from_config(search_tuner.load_supernet_config(workdir))
    owners = {}
    for row in rows:
        arch = space.parse(row["arch"])
        owners.setdefault(gene_of(space, arch, SPLIT), (arch, row["accuracy"]))
    assert len(owners) >= 2  # scored on more than one sub-supernet
    for c, (arch, accuracy) in sorted(owners.items())[:2]:
        direct = search_tuner.make_evaluator(
            search_config(few_shot.sub_dir(workdir, c), tmp_path / f"direct_{c}")
        )
        assert float(direct(arch)) == accuracy, f"sub-supernet {c}: {arch}"


CELLS = [(0, 1, 2, 0, 3, 4), (3, 3, 1, 2, 0, 1), (4, 0, 3, 4, 2, 2)]  # edge 3: ops 0, 2, 4


def _table(path):
    """A ground-truth table of :data:`CELLS` (80, 81, 82 %)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["CIFAR10TestAccuracy200Epochs", "ArchitectureString", "UniqueString"])
        for i, ops in enumerate(CELLS):
            writer.writerow([80.0 + i, nasbench201.to_string(ops), f"U{i}"])
    return path


def _rank(supernet_dir, workdir, table):
    """``spos_tf.rank`` of the table's cells on ``supernet_dir``: ``(config, scoring config)``."""
    fv = flags.FlagValues()
    rank.define_flags(fv)
    fv(
        [
            "rank",
            f"--flagfile={REPO / 'flags' / 'tiny_nb201_rank.cfg'}",
            f"--supernet_dir={supernet_dir}",
            f"--workdir={workdir}",
            f"--ground_truth={table}",
            "--num_archs=3",
            "--noprogress",
        ]
    )
    config = config_flags.from_flags(rank_lib.RankConfig, fv)
    with contextlib.chdir(REPO):  # the nested --search_flagfile is relative to the repository
        rank_lib.run(config, stream=io.StringIO())
        return config, rank_lib.scoring_config(config)


def _ranked_scores(workdir) -> dict:
    """``{benchmark string: supernet accuracy}`` of a rank workdir's ranking.csv."""
    with open(Path(workdir) / "ranking.csv") as f:
        return {r["benchmark"]: float(r["supernet_accuracy"]) for r in csv.DictReader(f)}


@pytest.mark.slow
def test_the_rank_app_scores_each_cell_on_its_owning_sub_supernet(split, tmp_path):
    workdir = split[0]
    config, scoring = _rank(workdir, tmp_path / "rank", _table(tmp_path / "table.csv"))
    with open(tmp_path / "rank" / rank_lib.ARCHS_FILE) as f:
        ranked = json.load(f)
    assert sorted(r["benchmark"] for r in ranked) == sorted(map(nasbench201.to_string, CELLS))
    space = run_dir.space_from_config(search_tuner.load_supernet_config(workdir))
    for record in ranked:
        arch = space.parse(record["arch"])
        with open(
            Path(rank_lib.arch_dir(config.workdir, record["index"]), rank_lib.SUPERNET_FILE)
        ) as f:
            accuracy = json.load(f)["accuracy"]
        owner = few_shot.sub_dir(workdir, gene_of(space, arch, SPLIT))
        direct = search_tuner.make_evaluator(dataclasses.replace(scoring, supernet_dir=owner))
        assert float(direct(arch)) == accuracy, f"{record['benchmark']} on {owner}"


@pytest.mark.slow
def test_tau_vs_epochs_scores_every_step_on_the_owning_sub_supernets(split, tmp_path, monkeypatch):
    """benchmarks/tau_vs_epochs.py on the split: one row per sub-supernet step (2 and 4), each
    scoring the cells exactly as the rank app does on a copy of the split whose every sub-supernet
    stops at that step."""
    workdir = split[0]
    table = _table(tmp_path / "table.csv")
    _rank(workdir, tmp_path / "rank", table)
    early = tmp_path / "early"  # the split as it stood at sub-supernet step 2
    shutil.copytree(workdir, early)
    for c in few_shot.load_layout(workdir).choices:
        folder = os.path.abspath(run_dir.checkpoint_dir(few_shot.sub_dir(early, c)))
        assert {p.name for p in Path(folder).glob("*.index")} == {"ckpt-2.index", "ckpt-4.index"}
        tf.compat.v1.train.update_checkpoint_state(
            folder, "ckpt-2", all_model_checkpoint_paths=["ckpt-2"]
        )
    _rank(early, tmp_path / "rank_early", table)
    expected = {2: _ranked_scores(tmp_path / "rank_early"), 4: _ranked_scores(tmp_path / "rank")}
    assert expected[2] != expected[4]  # the two steps' weights score some cell differently

    out = tmp_path / "tau"
    argv = [
        "tau_vs_epochs.py",
        f"--supernet_dir={workdir}",
        f"--ranking={tmp_path / 'rank'}",
        f"--ground_truth={table}",
        f"--search_flagfile={NB201_SEARCH}",
        f"--out={out}",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    import_benchmark("tau_vs_epochs").main()
    summary = json.loads((out / "tau_vs_epochs.json").read_text())
    from_step = few_shot.load_layout(workdir).from_step
    assert [(r["step"], r["from_step"]) for r in summary] == [(2, from_step), (4, from_step)]
    space = run_dir.space_from_config(search_tuner.load_supernet_config(workdir))
    for step in (2, 4):
        row = json.loads((out / f"step_{step}.json").read_text())
        names = [nasbench201.to_string(space.parse(a).genes[0]) for a in row["cells"]]
        assert dict(zip(names, row["scores"])) == expected[step], f"step {step}"
    assert (out / "tau_vs_epochs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tau_vs_epochs_needs_a_step_where_every_sub_supernet_has_a_checkpoint():
    script = import_benchmark("tau_vs_epochs")
    assert script.checkpoint_steps({0: [2, 4, 6], 1: [4, 6], 2: [6, 4]}) == [4, 6]
    with pytest.raises(ValueError, match=r"sub-supernet\(s\) 1 have no checkpoint"):
        script.checkpoint_steps({0: [2], 1: []})
    with pytest.raises(ValueError, match=r"no common step \(0: \[2\]; 1: \[4\]\)"):
        script.checkpoint_steps({0: [2], 1: [4]})
    with pytest.raises(ValueError, match="the run has no checkpoint"):
        script.checkpoint_steps({None: []})
