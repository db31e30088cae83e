"""Trace time of the supernet's training step (issue 15 item 3: the channel supernet).

Usage:
    PYTHONPATH=. python benchmarks/trace_time.py [--space=shufflenet_oneshot_blocks_channels]
        [--size=224] [--batch=8] [--space_args='{}']

Builds the supernet, then times (wall and this process's CPU seconds) tracing the training step
(``spos_tf.models.step.train_step`` with MaskedSGD in a ``tf.function``: ``get_concrete_function``)
and the first call (graph optimisation and one step). CPU seconds are less sensitive to other
processes on a shared machine than wall seconds: tracing is single-threaded Python. Prints one JSON
line. Expected run time: about a minute for the float spaces after issue 15 (the channel space's
640 static branches took 342 s before).
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


def _clock():
    return time.perf_counter(), time.process_time()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--space", default="shufflenet_oneshot_blocks_channels")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--space_args", default="{}")
    args = p.parse_args()
    kw = dict(image_size=args.size, num_classes=1000 if args.size >= 160 else 10)
    kw.update(json.loads(args.space_args))
    space = spaces.get(args.space, **kw)
    w0, c0 = _clock()
    net = spos_tf.build_supernet(space, seed=0)
    opt = spos_tf.MaskedSGD(0.1, 0.9, 4e-5)
    opt.bind(net)
    opt.build(net.trainable_variables)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        return step_lib.train_step(net, opt, loss, x, y).loss

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch, args.size, args.size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, space.num_classes, args.batch))
    block = net.choice_blocks[0]
    branches = len(block.units) * (
        1 if getattr(block, "dynamic_width", False) else len(block.widths)
    )
    w1, c1 = _clock()
    step.get_concrete_function(x, y)
    w2, c2 = _clock()
    step(x, y).numpy()
    w3, c3 = _clock()
    print(
        json.dumps(
            {
                "space": space.name,
                "image_size": args.size,
                "batch": args.batch,
                "branches_per_block": branches,
                "build_s": round(w1 - w0, 1),
                "trace_wall_s": round(w2 - w1, 1),
                "trace_cpu_s": round(c2 - c1, 1),
                "first_step_wall_s": round(w3 - w2, 1),
                "first_step_cpu_s": round(c3 - c2, 1),
                "trace_and_first_step_wall_s": round(w3 - w1, 1),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
