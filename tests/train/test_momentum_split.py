"""--momentum_split (DYNAS's momentum separation) through the train app: on a tiny NAS-Bench-201
run the optimizer holds one momentum set per op of the split edge, and after training exactly the
sets of the (edge op, split-edge op) pairs the run sampled are nonzero, read from the sampler's
(seed, step) draws; the optimizer arithmetic itself is tests/models/test_optim.py's."""

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

import spos_tf
from spos_tf import spaces
from spos_tf.models.sampling import ArchSampler, SequenceSampler
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


@pytest.mark.slow
def test_under_mirrored_strategy_only_the_sampled_sets_move_and_replicas_agree(mirrored):
    """Two replicas: after a path with op 0 on the split edge and one with op 2, exactly sets 0 and
    2 of the stem kernel's momentum are nonzero, identical on both replicas."""
    space = spaces.get("nasbench201", image_size=8, width=0.25, repeats=(1, 1, 1))
    a, b = space.make(op=[1, 2, 3, 0, 4, 1]), space.make(op=[1, 2, 3, 2, 4, 1])
    with mirrored.scope():
        net = spos_tf.build_supernet(space, seed=1)
        net.compile(
            optimizer=spos_tf.MaskedSGD(0.1, momentum=0.9, momentum_split=SPLIT),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    assert mirrored.num_replicas_in_sync == 2
    net.set_sampler(SequenceSampler(space, [a, b]))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 3)).astype("float32")
    net.fit(x, rng.integers(0, 10, 16), batch_size=8, epochs=1, verbose=0, shuffle=False)
    owned = {id(v) for v, _ in net.variable_owners()}
    stem = next(v for v in net.trainable_variables if id(v) not in owned)
    opt = net.optimizer
    slot = opt._slots["momentum"][opt._index_dict[opt._var_key(stem)]]
    copies = [v.numpy() for v in slot.values]
    assert all(np.array_equal(copies[0], c) for c in copies[1:])
    assert [c for c in range(len(space.ops)) if copies[0][c].any()] == [0, 2]
