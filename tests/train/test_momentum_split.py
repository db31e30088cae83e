"""--momentum_split (DYNAS's momentum separation) through the train app: on a tiny NAS-Bench-201
run the optimizer holds one momentum set per op of the split edge, and after training exactly the
sets of the (edge op, split-edge op) pairs the run sampled are nonzero, read from the sampler's
(seed, step) draws; the optimizer arithmetic itself is tests/models/test_optim.py's."""

import contextlib
import io
from pathlib import Path

import pytest

from spos_tf.models.sampling import ArchSampler
from spos_tf.models.optim import Owner
from spos_tf.runs import run_dir
from spos_tf.spaces.space import GENE_KINDS
from spos_tf.train import loop as train_loop
from spos_tf.train.config import resolve

from _train_checks import parse_flagfile, restored_optimizer

REPO = Path(__file__).resolve().parents[2]
SPLIT, STEPS = 3, 6
OP = GENE_KINDS.index("op")


def _config(workdir, data_dir, *extra):
    with contextlib.chdir(REPO):
        return parse_flagfile(
            "tiny_nb201_supernet.cfg",
            f"--workdir={workdir}",
            f"--data_dir={data_dir}",
            f"--steps={STEPS}",
            f"--checkpoint_every={STEPS}",
            "--noprogress",
            *extra,
        )


def test_a_block_outside_the_space_is_refused_before_anything_is_written(tmp_path, data_dir):
    config = _config(tmp_path / "run", data_dir, "--momentum_split=6")
    with pytest.raises(ValueError, match=r"--momentum_split=6 is not a choice block .* 0\.\.5"):
        resolve(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_each_op_of_the_split_edge_owns_the_momentum_of_its_steps(tmp_path, data_dir):
    workdir = tmp_path / "run"
    train_loop.run(_config(workdir, data_dir, f"--momentum_split={SPLIT}"), stream=io.StringIO())
    space, model, config = run_dir.restore_model(str(workdir))
    assert config["momentum_split"] == SPLIT
    optimizer = restored_optimizer(workdir, model)
    draws = [ArchSampler(space, config["seed"])(step).genes[0] for step in range(STEPS)]
    split_ops = {d[SPLIT] for d in draws}
    assert 1 < len(split_ops) < len(space.ops)  # some sets used, some never

    owners = {id(v): o for v, o in model.variable_owners()}
    checked = 0
    for var in model.trainable_variables:
        if not var.name.split(":")[0].endswith("kernel"):
            continue
        index = optimizer._index_dict[optimizer._var_key(var)]
        slot = optimizer._slots["momentum"][index].numpy()
        assert slot.shape == (len(space.ops), *var.shape)
        owner: Owner | None = owners.get(id(var))
        if owner is None:  # stem, reductions, head: on every path
            used = split_ops
        else:
            ((row, op),) = owner.conditions
            assert row == OP
            used = {d[SPLIT] for d in draws if d[owner.block] == op}
        nonzero = {c for c in range(len(space.ops)) if slot[c].any()}
        assert nonzero == used, f"{var.name}: sets {sorted(nonzero)}, sampled {sorted(used)}"
        checked += 1
    assert checked > 10
