"""Masked-training helpers of the supernet tests (not a test module): random batches, a compiled
masked optimizer and a snapshot of the weights and optimizer slots of every choice unit."""

import numpy as np
import tf_keras as keras

import spos_tf


def random_batch(space, n, seed=0):
    """``n`` random images of the space's size and labels: ``(x float32 NHWC, y ints)``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, space.image_size, space.image_size, 3)).astype("float32")
    y = rng.integers(0, space.num_classes, n)
    return x, y


def compile_masked(net, lr=0.1, optimizer="sgd"):
    """Compiles ``net`` with MaskedSGD (momentum 0.9) or MaskedAdam (``lr / 10``), both with weight
    decay 4e-5, and sparse cross-entropy on logits."""
    opt = (
        spos_tf.MaskedSGD(lr, momentum=0.9, weight_decay=4e-5)
        if optimizer == "sgd"
        else spos_tf.models.optim.MaskedAdam(lr / 10, weight_decay=4e-5)
    )
    net.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def optimizer_snapshot(net):
    """Copies of every choice unit's weights and their optimizer slots, keyed by
    ``(block, op, key)`` and ``(block, op, "key#slot")``."""
    opt = net.optimizer
    state = {}
    for block in net.choice_blocks:
        for op, unit in block.units.items():
            for key, var in unit.weight_dict().items():
                state[(block.block, op, key)] = var.numpy().copy()
                if var.trainable:
                    for name in opt.slot_names:  # momentum; or Adam's m, v and step counts t
                        slot = opt._slots[name][opt._index_dict[opt._var_key(var)]]
                        state[(block.block, op, f"{key}#{name}")] = slot.numpy().copy()
    return state
