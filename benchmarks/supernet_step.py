"""Training-step time of the supernet on sampled paths vs the stand-alone networks of the same paths.

Usage:
    python benchmarks/supernet_step.py [--space=shufflenet_oneshot] [--sizes=224,32] [--batch=32]
        [--archs=3] [--steps=6] [--space_args='{"width": 1.0}']

For each image size: K architectures are sampled; the supernet (masked SGD, momentum 0.9, wd 4e-5)
runs `steps` training steps on each path (one traced function for all of them), and each path's
stand-alone network (same optimizer, no owners, so plain SGD) runs the same number of steps on the
same batch. Warm-up steps (tracing) are excluded. Prints per-step times, the ratio
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
from spos_tf.sampling import ArchSampler  # noqa: E402


class CycleSampler(ArchSampler):
    def __init__(self, space, archs):
        super().__init__(space, 0)
        self.archs = archs

    def __call__(self, step):
        return self.archs[step % len(self.archs)]


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _time_steps(step_fn, n):
    step_fn()                      # warm-up: tracing and first run
    step_fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        step_fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def bench(space, batch, num_archs, steps, seed=0):
    rng = np.random.default_rng(seed)
    archs = [space.sample(rng) for _ in range(num_archs)]
    x = tf.constant(rng.normal(size=(batch, space.image_size, space.image_size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, space.num_classes, batch))

    net = spos_tf.build_supernet(space, seed=seed)
    net.compile(optimizer=spos_tf.MaskedSGD(0.1, 0.9, 4e-5), loss=_loss())
    net.set_sampler(CycleSampler(space, archs))
    train = net.make_train_function()
    data = iter(tf.data.Dataset.from_tensors((x, y)).repeat())
    t0 = time.perf_counter()
    train(data)
    trace_s = time.perf_counter() - t0
    super_t = []
    for _ in archs:   # the sampler cycles through the archs: one timed call per arch per round
        super_t.append(_time_steps(lambda: train(data).get("loss").numpy(), steps))
    alone_t = []
    for arch in archs:
        model = spos_tf.build_standalone(space, arch, seed=seed)
        model.compile(optimizer=spos_tf.MaskedSGD(0.1, 0.9, 4e-5), loss=_loss())
        f = model.make_train_function()
        alone_t.append(_time_steps(lambda: f(data)["loss"].numpy(), steps))
    s, a = float(np.mean(super_t)), float(np.mean(alone_t))
    return {"space": space.name, "image_size": space.image_size, "batch": batch,
            "archs": [str(a_) for a_ in archs], "supernet_trace_s": round(trace_s, 1),
            "supernet_step_s": round(s, 4), "standalone_step_s": round(a, 4),
            "ratio": round(s / a, 3), "supernet_img_per_s": round(batch / s, 1),
            "standalone_img_per_s": round(batch / a, 1),
            "traces": train.experimental_get_tracing_count()}


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
