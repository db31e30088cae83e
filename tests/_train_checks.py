"""Checks shared by tests/test_train.py and tests/test_multiworker.py (not a test module)."""
import numpy as np
import tensorflow as tf

import spos_tf
from spos_tf import run_dir
from spos_tf.sampling import ArchSampler


def checkpoint_values(path):
    """Every saved tensor but the object graph and the input iterator's (variant) state."""
    reader = tf.train.load_checkpoint(str(path))
    return {k: reader.get_tensor(k) for k, dtype in reader.get_variable_to_dtype_map().items()
            if "OBJECT_GRAPH" not in k and dtype != tf.variant}


def assert_only_sampled_choices_moved(workdir, steps):
    """The masked-update guarantee after ``steps`` steps of the supernet run in ``workdir``: the
    kernels of every (block, op) that some step sampled changed, all others are bit-identical to
    their initial values. Returns the number of unsampled (block, op) pairs."""
    space, trained, config = run_dir.restore_model(str(workdir))
    initial = spos_tf.build_supernet(space, seed=config["seed"])
    sampler = ArchSampler(space, config["seed"])
    used = {(b, op) for step in range(steps) for b, op in enumerate(sampler(step).genes[0])}
    for b, block in enumerate(trained.choice_blocks):
        init_units = list(initial.choice_blocks[b].units.values())
        for o, unit in enumerate(block.units.values()):
            init = init_units[o].weight_dict()
            kernels = [k for k in unit.weight_dict() if k.endswith("kernel")]
            same = all(np.array_equal(unit.weight_dict()[k].numpy(), init[k].numpy())
                       for k in kernels)
            assert same == ((b, o) not in used), f"block {b} op {o}: sampled={(b, o) in used}"
    return space.num_blocks * len(space.ops) - len(used)
