"""Checks shared by the tests of the training app and library (tests/test_train*.py) and
tests/train/test_multiworker.py (not a test module)."""

import contextlib
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import flags

import spos_tf
from spos_tf.runs import run_dir
from spos_tf.models.sampling import ArchSampler

FLAGS_DIR = Path(__file__).resolve().parents[1] / "flags"


def parse_flagfile(name, *extra):
    """The ``TrainConfig`` of ``python -m spos_tf.train --flagfile=flags/<name> <extra>``."""
    from spos_tf.train import __main__ as train

    fv = flags.FlagValues()
    train.define_flags(fv)
    fv(["train", f"--flagfile={FLAGS_DIR / name}", *extra])
    return train.config_from_flags(fv)


def checkpoint_run(workdir, steps=(6, 12)):
    """A run directory holding checkpoints of the tiny NAS-Bench-201 supernet
    (flags/tiny_nb201_supernet.cfg) at ``steps``, nothing trained: every float weight drawn anew
    per checkpoint and every integer variable (``arch_var``) set to the step. Returns its config."""
    with contextlib.chdir(FLAGS_DIR.parent):
        config = parse_flagfile("tiny_nb201_supernet.cfg", f"--workdir={workdir}").to_dict()
    run_dir.write_config(str(workdir), config)
    model = run_dir.build_model(config)
    checkpoint = tf.train.Checkpoint(model=model)
    manager = tf.train.CheckpointManager(checkpoint, run_dir.checkpoint_dir(str(workdir)), 10)
    rng = np.random.default_rng(0)
    for step in steps:
        for v in model.variables:
            if v.dtype.is_floating:
                v.assign(rng.normal(size=v.shape).astype(v.dtype.as_numpy_dtype))
            else:
                v.assign(np.full(v.shape, step, v.dtype.as_numpy_dtype))
        manager.save(checkpoint_number=step)
    return config


def checkpoint_values(path):
    """Every saved tensor but the object graph and the input iterator's (variant) state."""
    reader = tf.train.load_checkpoint(str(path))
    return {
        k: reader.get_tensor(k)
        for k, dtype in reader.get_variable_to_dtype_map().items()
        if "OBJECT_GRAPH" not in k and dtype != tf.variant
    }


def restored_optimizer(workdir, model):
    """The optimizer of the supernet run in ``workdir`` with its slots read from the latest
    checkpoint (``model``: the run's restored supernet)."""
    from spos_tf import train as train_lib

    config = train_lib.TrainConfig.from_dict(run_dir.load_run_config(str(workdir)))
    optimizer = train_lib.make_optimizer(config)
    optimizer.bind(model)
    optimizer.build(model.trainable_variables)
    path = run_dir.latest_checkpoint(run_dir.checkpoint_dir(str(workdir)))
    run_dir.read_checkpoint(
        tf.train.Checkpoint(model=model, optimizer=optimizer), path, partial=True
    )
    return optimizer


def assert_only_sampled_choices_moved(workdir, steps, sampler=None):
    """The masked-update guarantee after ``steps`` steps of the supernet run in ``workdir``: the
    kernels of every (block, op) that some step sampled changed; every other (block, op) keeps
    its initial kernels and BN moving statistics bit for bit, and its optimizer slots are still
    exactly zero. ``sampler(space, seed)`` makes the run's sampler (default
    :class:`ArchSampler`); one with ``paths(step)`` trained all of them each step. A cell
    space's edge is its block. Returns the number of unsampled (block, op) pairs."""
    space, trained, config = run_dir.restore_model(str(workdir))
    optimizer = restored_optimizer(workdir, trained)
    initial = spos_tf.build_supernet(space, seed=config["seed"])
    sampler = (sampler or ArchSampler)(space, config["seed"])
    paths = getattr(sampler, "paths", lambda step: [sampler(step)])
    used = {
        (b, op)
        for step in range(steps)
        for arch in paths(step)
        for b, op in enumerate(arch.genes[0])
    }
    bn_stats = slots_checked = 0
    for i, block in enumerate(trained.choice_blocks):
        b = block.block
        init_units = list(initial.choice_blocks[i].units.values())
        for o, unit in enumerate(block.units.values()):
            init, weights = init_units[o].weight_dict(), unit.weight_dict()
            same = {k: np.array_equal(v.numpy(), init[k].numpy()) for k, v in weights.items()}
            kernels_same = all(same[k] for k in weights if k.endswith("kernel"))
            # ops without kernels (a cell's none, skip and pooling) have nothing that must move
            if any(k.endswith("kernel") for k in weights):
                assert kernels_same == ((b, o) not in used), (
                    f"block {b} op {o}: sampled={(b, o) in used}"
                )
            if (b, o) in used:
                continue
            assert all(same.values()), f"block {b} op {o} (unsampled) changed: " + ", ".join(
                k for k, s in same.items() if not s
            )
            bn_stats += sum(1 for k in weights if "moving" in k)
            for v in weights.values():
                if not v.trainable:
                    continue
                index = optimizer._index_dict[optimizer._var_key(v)]
                for name in optimizer.slot_names:
                    slot = optimizer._slots[name][index].numpy()
                    assert not np.any(slot), f"block {b} op {o}: {name} slot of {v.name} moved"
                    slots_checked += 1
    unsampled = space.num_blocks * len(space.ops) - len(used)
    assert not unsampled or (bn_stats and slots_checked), "nothing of the unsampled ops checked"
    return unsampled


def standalone_accuracy(workdir, split=None):
    """Top-1 accuracy of the stand-alone network saved in ``workdir`` (its latest checkpoint, BN
    statistics included) on its evaluation split (``eval_split``, ``eval_batch_size`` and
    ``eval_batches`` of its config.json; ``split`` overrides the split), computed here with a
    plain eager loop: independent of ``spos_tf.models.evaluate`` and of what the run reported."""
    from spos_tf.data import DataConfig, build_dataset

    space, model, config = run_dir.restore_model(str(workdir))
    data = DataConfig(**dict(config["data"], image_size=space.image_size))
    ds = build_dataset(
        data,
        split or config["eval_split"],
        config["eval_batch_size"],
        training=False,
        seed=config["seed"],
        repeat=False,
    )
    if config.get("eval_batches"):
        ds = ds.take(config["eval_batches"])
    correct = total = 0
    for images, labels in ds:
        predicted = np.argmax(model(images, training=False).numpy(), axis=-1)
        correct += int(np.sum(predicted == labels.numpy()))
        total += int(labels.shape[0])
    assert total > 0, f"the {split or config['eval_split']} split of {workdir} is empty"
    return correct / total
