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

:func:`naswot` is NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML
2021): for a batch of ``n`` images, every ReLU input is cut into binary codes (1 where the unit
is positive), one per image; ``K[i, j]`` counts the ReLU units where images ``i`` and ``j`` agree
(``c_i . c_j + (1 - c_i) . (1 - c_j)``, summed over all ReLUs of the network) and the score is
``log |det K|``. Networks whose units separate the images more get higher scores. As in the
reference code, every ReLU counts (each op's, the reduction blocks' and the head's), the
network runs in training mode (BN normalises by the batch's statistics) and its weights are the
untrained initialisation. Cost: one forward pass of the batch and an ``n x n`` log-determinant,
plus the build: 248 s for 200 NAS-Bench-201 proxy cells (C=16, N=2) on 128 CIFAR images on 2
CPU cores, about 1.2 s each.
"""

from __future__ import annotations

import contextlib

import numpy as np
import spos_tf  # noqa: F401
import tensorflow as tf

from spos_tf.models import blocks


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


@contextlib.contextmanager
def relu_taps(tap):
    """Within the block, ``tap(x)`` sees the input ``x`` of every ReLU the model code runs
    eagerly (:data:`spos_tf.models.blocks.RELU_TAPS`); removed on exit, also after an error."""
    blocks.RELU_TAPS.append(tap)
    try:
        yield
    finally:
        blocks.RELU_TAPS.remove(tap)


def naswot(model, images) -> float:
    """The NASWOT score of ``model`` on ``images`` (a batch, ``n >= 2``): ``log |det K|`` of the
    ReLU-code agreement matrix ``K`` (module docstring). Runs ``model(images, training=True)``
    eagerly: BN uses the batch's statistics (and updates the model's running statistics, so pass
    a throwaway network, as :func:`naswot_of` does).

    Returns:
      The score (a Python float; ``-inf`` when ``K`` is singular, e.g. two identical images).
    """
    images = tf.convert_to_tensor(images)
    n = int(images.shape[0])
    if n < 2:
        raise ValueError(f"NASWOT needs a batch of at least 2 images, got {n}")
    agree = np.zeros((n, n), np.float64)

    def tap(x):
        codes = (np.reshape(np.asarray(x), (n, -1)) > 0).astype(np.float64)
        agree[...] += codes @ codes.T + (1.0 - codes) @ (1.0 - codes).T

    with relu_taps(tap):
        model(images, training=True)
    sign, logdet = np.linalg.slogdet(agree)
    return float(logdet) if sign != 0 else float("-inf")


def naswot_of(space, arch, images, seed: int = 0) -> float:
    """NASWOT of the stand-alone network of ``arch`` in ``space`` at its initialisation, on
    ``images`` (e.g. the first calibration batch of the search's data)."""
    model = spos_tf.build_standalone(space, arch, seed=seed)
    return naswot(model, images)
