"""Channel shuffle + split of a stride-1 ShuffleNetV2 unit: forward + backward time of its forms.

Usage:
    PYTHONPATH=. python benchmarks/shuffle_split.py [--rounds=7]

The unit splits its input ``x`` ``[N, H, W, C]`` into even channels (the projection half) and odd
channels (the main half). Timed per form, traced, forward and backward (the loss is
``sum(even * g1) + sum(odd * g2)`` with fixed random ``g1``, ``g2``), rounds alternated, median, on
the four stage shapes of the 224 px supernet at batch 32:

- ``strided``: ``x[..., 0::2], x[..., 1::2]`` (spos_tf before issue 15);
- ``plain``: reshape ``[.., C/2, 2]``, transpose, ``[..., 0, :]`` / ``[..., 1, :]`` (the plain
  switch_case build, ``benchmarks/plain_supernet.py``);
- ``unstack``: reshape ``[.., C/2, 2]``, ``tf.unstack(axis=-1)``;
- ``transpose_unstack``: reshape ``[pixels, C/2, 2]``, transpose ``[2, pixels, C/2]``, unstack
  axis 0, reshapes (``spos_tf.models.blocks.shuffle_split``, the fastest with oneDNN);
- ``split``: the same with ``tf.split`` and reshapes;
- ``gather``: ``tf.gather`` of the even / odd channel indices;
- ``floor``: a contiguous ``tf.split`` in two halves: not a shuffle, the cost of the loss and of
  touching the tensor, for scale.

Every form's output and gradient are checked against ``strided`` before timing. Prints a JSON line
per shape: ms per form and the ratio to ``strided``. oneDNN (on by default through spos_tf, see
README "Speed on CPUs") changes the ranking: run with ``TF_ENABLE_ONEDNN_OPTS=0`` to compare.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import spos_tf  # noqa: E402,F401
import tensorflow as tf  # noqa: E402
from spos_tf.models.blocks import shuffle_split  # noqa: E402

SHAPES = ((32, 56, 56, 64), (32, 28, 28, 160), (32, 14, 14, 320), (32, 7, 7, 640))


def forms(h, w, c):
    half = c // 2

    def plain(x):
        y = tf.transpose(tf.reshape(x, [-1, h, w, half, 2]), [0, 1, 2, 4, 3])
        return y[..., 0, :], y[..., 1, :]

    def split(x):
        a, b = tf.split(tf.reshape(x, [-1, h, w, half, 2]), 2, axis=-1)
        return tf.reshape(a, [-1, h, w, half]), tf.reshape(b, [-1, h, w, half])

    def unstack(x):
        return tuple(tf.unstack(tf.reshape(x, [-1, h, w, half, 2]), axis=-1))

    even, odd = tf.range(0, c, 2), tf.range(1, c, 2)
    return {
        "strided": lambda x: (x[..., 0::2], x[..., 1::2]),
        "plain": plain,
        "unstack": unstack,
        "transpose_unstack": shuffle_split,
        "split": split,
        "gather": lambda x: (tf.gather(x, even, axis=-1), tf.gather(x, odd, axis=-1)),
        "floor": lambda x: tuple(tf.split(x, 2, axis=-1)),
    }


def bench(shape, rounds):
    n, h, w, c = shape
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    g1, g2 = (tf.constant(rng.normal(size=(n, h, w, c // 2)).astype(np.float32)) for _ in "ab")
    steps, ref = {}, None
    for name, form in forms(h, w, c).items():

        @tf.function
        def step(t, form=form):
            with tf.GradientTape() as tape:
                tape.watch(t)
                a, b = form(t)
                loss = tf.reduce_sum(a * g1) + tf.reduce_sum(b * g2)
            return a, b, tape.gradient(loss, t)

        out = [v.numpy() for v in step(x)]
        if name == "strided":
            ref = out
        elif name != "floor":
            for got, want in zip(out, ref):
                np.testing.assert_array_equal(got, want, err_msg=name)
        steps[name] = step
    times = {k: [] for k in steps}
    for _ in range(rounds):
        for k, step in steps.items():
            t0 = time.perf_counter()
            step(x)[2].numpy()
            times[k].append(time.perf_counter() - t0)
    ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    return {
        "shape": list(shape),
        "ms": {k: round(v, 2) for k, v in ms.items()},
        "over_strided": {k: round(v / ms["strided"], 2) for k, v in ms.items()},
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    for shape in SHAPES:
        print(json.dumps(bench(shape, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
