"""Supernet vs stand-alone vs a plain switch_case supernet: training img/s at 224, one command.

Usage:
    PYTHONPATH=. python benchmarks/supernet_vs_plain.py [--size=224] [--batch=32] [--archs=3]
        [--rounds=5] [--profile=0] [--profile_dir=/tmp/spos_profile]
        [--precision=float32|mixed_bfloat16]

Three steps on the same batch (batch 32, 1000 classes at 224): the spos_tf supernet
(``spos_tf.models.step.train_step`` with MaskedSGD momentum 0.9, wd 4e-5, paths from a
SequenceSampler cycling ``--archs`` random architectures), the stand-alone network of each of
those paths (same step, same optimizer, no owners), and the plain build of
``benchmarks/plain_supernet.py`` (stock Keras layers, switch_case, unmasked SGD momentum) on the
same op choices. Tracing is
excluded; the three run alternately round by round (supernet k, stand-alone k, plain k) so machine
load hits all alike; per-path medians, averaged over paths. Prints one JSON line with img/s and the
ratios, plus the load average. ``--precision=mixed_bfloat16`` builds all three under that Keras
policy (``spos_tf.models.precision.policy_scope``; bfloat16 needs no loss scaling). ``--profile=N`` also profiles N steps of each (see
``benchmarks/op_profile.py``) and prints the top op types per step. Expected run time at 224 on
2 cores: about 3-4 minutes (three traces of ~30 s, 3 x archs x rounds steps of ~2 s).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import spos_tf  # noqa: E402
import tensorflow as tf  # noqa: E402
from spos_tf.models import precision
from spos_tf import spaces  # noqa: E402
from spos_tf.models.sampling import SequenceSampler  # noqa: E402

import op_profile  # noqa: E402
import plain_supernet  # noqa: E402
from supernet_step import _step_function as _spos_step  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--archs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--profile", type=int, default=0)
    p.add_argument("--profile_dir", default="/tmp/spos_profile")
    p.add_argument("--skip", default="", help="comma list of sides not to run: plain,alone")
    p.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"))
    args = p.parse_args()
    with precision.policy_scope(args.precision):
        run(args)


def run(args):
    skip = set(filter(None, args.skip.split(",")))
    space = spaces.get("shufflenet_oneshot", image_size=args.size, num_classes=1000)
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(args.archs)]
    x = tf.constant(rng.normal(size=(args.batch, args.size, args.size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, 1000, args.batch))

    net = spos_tf.build_supernet(space, seed=0)
    net.set_sampler(SequenceSampler(space, archs, cycle=True))
    opt = spos_tf.MaskedSGD(0.1, 0.9, 4e-5)
    sup = _spos_step(net, opt)
    t0 = time.perf_counter()
    sup(x, y).numpy()
    trace = {"supernet": time.perf_counter() - t0}
    sides = {"supernet": [lambda: sup(x, y).numpy()] * len(archs)}
    if "alone" not in skip:
        alone = []
        for arch in archs:
            f = _spos_step(
                spos_tf.build_standalone(space, arch, seed=0), spos_tf.MaskedSGD(0.1, 0.9, 4e-5)
            )
            t0 = time.perf_counter()
            f(x, y).numpy()
            trace.setdefault("standalone", time.perf_counter() - t0)
            alone.append(lambda f=f: f(x, y).numpy())
        sides["standalone"] = alone
    if "plain" not in skip:
        plain = plain_supernet.build(args.size)
        pstep = plain_supernet.step_function(plain)
        ops = [tf.constant(space.indices(a)[0], tf.int32) for a in archs]  # GENE_KINDS row 0
        t0 = time.perf_counter()
        pstep(x, y, ops[0]).numpy()
        trace["plain"] = time.perf_counter() - t0
        sides["plain"] = [lambda o=o: pstep(x, y, o).numpy() for o in ops]
    for fns in sides.values():  # second warm-up call of every path
        for f in fns:
            f()
    while int(opt.iterations.numpy()) % len(archs):
        sup(x, y).numpy()
    times = {s: [[] for _ in archs] for s in sides}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for k in range(len(archs)):
            for s, fns in sides.items():
                t = time.perf_counter()
                fns[k]()
                times[s][k].append(time.perf_counter() - t)
        load.append(os.getloadavg()[0])
    step_s = {s: float(np.mean([np.median(t) for t in ts])) for s, ts in times.items()}
    out = {
        "precision": args.precision,
        "size": args.size,
        "batch": args.batch,
        "archs": [str(a) for a in archs],
        "rounds": args.rounds,
        "load_avg_1min": [round(v, 2) for v in load],
        "trace_s": {s: round(v, 1) for s, v in trace.items()},
        "step_s": {s: round(v, 4) for s, v in step_s.items()},
        "img_per_s": {s: round(args.batch / v, 1) for s, v in step_s.items()},
    }
    if "standalone" in step_s:
        out["supernet_over_standalone"] = round(step_s["supernet"] / step_s["standalone"], 3)
    if "plain" in step_s:
        out["supernet_img_s_over_plain"] = round(step_s["plain"] / step_s["supernet"], 3)
    print(json.dumps(out), flush=True)
    for s, fns in sides.items() if args.profile else ():
        by_type, by_name = op_profile.profile(
            fns[0], args.profile, os.path.join(args.profile_dir, s)
        )
        print(
            json.dumps(
                {
                    "profile": s,
                    "path": out["archs"][0],
                    "steps": args.profile,
                    "top_op_types_ms_per_step": op_profile.top(by_type, 20),
                    "top_ops_ms_per_step": op_profile.top(by_name, 15),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
