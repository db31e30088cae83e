"""Training-step time of the supernet on sampled paths vs the stand-alone networks of the same paths.

Usage:
    python benchmarks/supernet_step.py [--space=shufflenet_oneshot] [--sizes=224,32] [--batch=32]
        [--archs=3] [--steps=6] [--space_args='{"width": 1.0}']

For each image size: K architectures are sampled; the supernet (masked SGD, momentum 0.9, wd 4e-5)
runs `steps` training steps on each path (one traced function for all of them), and each path's
stand-alone network (same optimizer, no owners, so plain SGD) runs the same number of steps on the
same batch. Both sides run `spos_tf.models.step.train_step`, the step of `fit` and of the training
app, in a `tf.function` (no Keras metrics). Warm-up steps (tracing) are excluded; supernet and stand-alone steps are interleaved
round by round and each side's median per architecture is used. Prints per-step times, the ratio
supernet / stand-alone (target <= 1.15) and images per second.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import spos_tf  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from spos_tf import spaces  # noqa: E402
from spos_tf.models import step as step_lib  # noqa: E402
from spos_tf.models.sampling import SequenceSampler  # noqa: E402


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _step_function(model, optimizer):
    """A traced ``spos_tf.models.step.train_step`` (the step fit and the training app run)."""
    loss = _loss()
    if step_lib.is_supernet(model):
        optimizer.bind(model)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        return step_lib.train_step(model, optimizer, loss, x, y).loss

    return step


def bench(space, batch, num_archs, steps, seed=0):
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(num_archs)]
    x = tf.constant(rng.normal(size=(batch, space.image_size, space.image_size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, space.num_classes, batch))

    net = spos_tf.build_supernet(space, seed=seed)
    net.set_sampler(SequenceSampler(space, archs, cycle=True))
    optimizer = spos_tf.MaskedSGD(0.1, 0.9, 4e-5)
    train = _step_function(net, optimizer)
    t0 = time.perf_counter()
    train(x, y)
    trace_s = time.perf_counter() - t0
    alone = []
    for arch in archs:
        model = spos_tf.build_standalone(space, arch, seed=seed)
        f = _step_function(model, spos_tf.MaskedSGD(0.1, 0.9, 4e-5))
        f(x, y)  # warm-up: tracing and first run
        f(x, y)
        alone.append(f)
    train(x, y)
    # Interleaved rounds (supernet on path k, then stand-alone k), so that a change of machine load
    # hits both sides alike; the supernet's sampler cycles through the same archs in order.
    super_t, alone_t = [[] for _ in archs], [[] for _ in archs]
    while int(optimizer.iterations.numpy()) % len(archs):
        train(x, y)
    for _ in range(steps):
        for k, f in enumerate(alone):
            t = time.perf_counter()
            train(x, y).numpy()
            super_t[k].append(time.perf_counter() - t)
            t = time.perf_counter()
            f(x, y).numpy()
            alone_t[k].append(time.perf_counter() - t)
    super_t = [float(np.median(t)) for t in super_t]
    alone_t = [float(np.median(t)) for t in alone_t]
    s, a = float(np.mean(super_t)), float(np.mean(alone_t))
    return {
        "space": space.name,
        "image_size": space.image_size,
        "batch": batch,
        "archs": [str(a_) for a_ in archs],
        "supernet_trace_s": round(trace_s, 1),
        "supernet_step_s": round(s, 4),
        "standalone_step_s": round(a, 4),
        "ratio": round(s / a, 3),
        "supernet_img_per_s": round(batch / s, 1),
        "standalone_img_per_s": round(batch / a, 1),
        "traces": train.experimental_get_tracing_count(),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--space", default="shufflenet_oneshot")
    p.add_argument("--sizes", default="224,32")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--archs", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--space_args", default="{}")
    args = p.parse_args()
    for size in [int(s) for s in args.sizes.split(",")]:
        kw = dict(image_size=size, num_classes=1000 if size >= 160 else 10)
        kw.update(json.loads(args.space_args))
        space = spaces.get(args.space, **kw)
        print(json.dumps(bench(space, args.batch, args.archs, args.steps)), flush=True)


if __name__ == "__main__":
    main()
