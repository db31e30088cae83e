"""Zero-cost proxies: scores of an untrained network that predict its trained accuracy.

:func:`synflow` is SynFlow (Tanaka et al., NeurIPS 2020; as a NAS proxy, Abdelfattah et al.,
"Zero-Cost Proxies for Lightweight NAS", ICLR 2021): with every weight replaced by its absolute
value and an all-ones input, ``R`` is the sum of the network's outputs and the score is
``sum over conv/FC kernels of |w * dR/dw|``. It needs no data and no labels. BN runs in inference
mode on its initial statistics (mean 0, variance 1), so it scales by about 1 and does not mix
examples; biases and BN parameters are made non-negative too but are not summed, as in the
proxy's reference code (conv and linear weights only).

Used by ``spos_tf.rank --score=supernet+synflow`` as a prior rank-averaged with the supernet's
score; it is always reported as a combination, never as the supernet alone.

Cost: one forward and one backward pass of one image per network (plus building the stand-alone
network: about a second for the NAS-Bench-201 proxies on 2 CPU cores).
"""

from __future__ import annotations

import numpy as np
import spos_tf  # noqa: F401
import tensorflow as tf


def synflow(model, input_shape=None, dtype=tf.float64) -> float:
    """The SynFlow score of ``model`` (a Keras model; weights are restored afterwards).

    Args:
      model: the network, e.g. ``spos_tf.build_standalone(space, arch)`` (untrained).
      input_shape: one input's shape without the batch axis (default: the model's input).
      dtype: the precision of the computation; float64 (default) keeps deep products from
        overflowing float32 (the reference code uses double precision too).

    Returns:
      The score (a Python float; it grows fast with depth and width, so compare ranks or logs).
    """
    shape = tuple(input_shape or model.input_shape[1:])
    variables = list(model.variables)
    saved = [v.numpy() for v in variables]
    try:
        for v in variables:
            v.assign(np.abs(v.numpy()))
        kernels = [v for v in model.trainable_variables if "kernel" in v.name]
        with tf.GradientTape() as tape:
            ones = tf.ones((1, *shape), tf.float32)
            out = tf.cast(model(ones, training=False), dtype)
            total = tf.reduce_sum(out)
        grads = tape.gradient(total, kernels)
        score = 0.0
        for v, g in zip(kernels, grads):
            if g is not None:
                score += float(tf.reduce_sum(tf.abs(tf.cast(v, dtype) * tf.cast(g, dtype))))
        return score
    finally:
        for v, value in zip(variables, saved):
            v.assign(value)


def synflow_of(space, arch, seed: int = 0) -> float:
    """SynFlow of the stand-alone network of ``arch`` in ``space`` at its initialisation."""
    model = spos_tf.build_standalone(space, arch, seed=seed)
    return synflow(model)
