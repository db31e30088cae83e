"""Micro-benchmark: spos_tf primitives vs the stock tf_keras equivalents, forward + backward.

Usage:
    PYTHONPATH=. python benchmarks/primitive_overhead.py [--batch=32] [--hw=56] [--channels=64]
        [--rounds=20]

Pairs, each on one activation of the first stage at 224 (``[batch, hw, hw, channels]``), traced,
timed alternately (median of ``rounds``):

* channel shuffle + split of a stride-1 ShuffleNetV2 unit: ``spos_tf.models.blocks.shuffle_split``
  (reshape + unstack since issue 15; ``x[..., 0::2], x[..., 1::2]`` before) vs reshape /
  transpose / slice (the plain build); all forms side by side: ``benchmarks/shuffle_split.py``;
* BatchNorm in training mode without affine: ``spos_tf.models.layers.BatchNorm`` (FusedBatchNormV3 and
  the moving-statistic update with a shared momentum variable) vs
  ``keras.layers.BatchNormalization``;
* 1x1 conv: ``spos_tf.models.layers.Conv`` vs ``keras.layers.Conv2D``.

Prints one JSON line per pair with milliseconds and the ratio ours / stock. Run time: under a
minute on an idle 2-core machine.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import spos_tf  # noqa: E402, F401
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from spos_tf.models.blocks import shuffle_split  # noqa: E402
from spos_tf.models.layers import BatchNorm, BNControl, Conv  # noqa: E402
from spos_tf.spaces.ops import Prim  # noqa: E402


def _grad_fn(fn, variables=()):
    @tf.function
    def f(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            loss = tf.add_n([tf.reduce_sum(t * t) for t in tf.nest.flatten(y)])
        return tape.gradient(loss, [x, *variables])

    return f


def _shuffle_ours(x):
    return shuffle_split(x)


def _shuffle_plain(x):
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    y = tf.transpose(tf.reshape(x, [-1, h, w, c // 2, 2]), [0, 1, 2, 4, 3])
    return y[..., 0, :], y[..., 1, :]


def _time(pairs, x, rounds):
    for a, b in pairs.values():
        a(x), b(x), a(x), b(x)
    times = {k: ([], []) for k in pairs}
    for _ in range(rounds):
        for k, (a, b) in pairs.items():
            for fn, out in ((a, times[k][0]), (b, times[k][1])):
                t = time.perf_counter()
                tf.nest.map_structure(lambda t: t.numpy(), fn(x))
                out.append(time.perf_counter() - t)
    return {
        k: (float(np.median(a)) * 1e3, float(np.median(b)) * 1e3) for k, (a, b) in times.items()
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--hw", type=int, default=56)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args()
    c = args.channels
    x = tf.random.normal([args.batch, args.hw, args.hw, c], seed=0)
    ours_bn = BatchNorm(Prim("bn", c, c), BNControl(), affine=False)
    stock_bn = keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, center=False, scale=False
    )
    stock_bn.build(x.shape)
    ours_conv = Conv(Prim("conv", c, c), seed=0)
    stock_conv = keras.layers.Conv2D(c, 1, use_bias=False)
    stock_conv.build(x.shape)
    pairs = {
        "channel_shuffle_split": (_grad_fn(_shuffle_ours), _grad_fn(_shuffle_plain)),
        "batchnorm_train_no_affine": (
            _grad_fn(lambda t: ours_bn(t, training=True)),
            _grad_fn(lambda t: stock_bn(t, training=True)),
        ),
        "conv1x1": (
            _grad_fn(ours_conv, [ours_conv.kernel]),
            _grad_fn(stock_conv, [stock_conv.kernel]),
        ),
    }
    for name, (ours, stock) in _time(pairs, x, args.rounds).items():
        print(
            json.dumps(
                {
                    "pair": name,
                    "shape": list(x.shape),
                    "ours_ms": round(ours, 2),
                    "stock_ms": round(stock, 2),
                    "ratio": round(ours / stock, 3),
                    "load_avg_1min": round(os.getloadavg()[0], 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
