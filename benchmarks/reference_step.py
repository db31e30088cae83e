"""spos_tf supernet vs the authors' PyTorch supernet (and the plain build): training img/s, one run.

Usage:
    PYTHONPATH=. python benchmarks/reference_step.py \
        --reference_dir=<checkout of megvii-model/SinglePathOneShot> \
        [--torch_python=<python with torch>] [--batch=32] [--rounds=5] [--steps=2] \
        [--settle=1.0] [--skip=plain]

Needs the reference's ``src/Supernet/{network,blocks}.py`` (the user's checkout; nothing of it is in
spos_tf) and PyTorch, which may live in another interpreter (``--torch_python``): the PyTorch side
runs as a persistent subprocess that takes lists of paths to train on stdin. ``--size`` stays 224:
the reference's network pools with a fixed 7x7 window.

Every side trains the 20-block supernet of Table 2 at 1000 classes on one fixed random batch,
with a new uniformly random path every step (the same sequence of paths on every side, so that
the sides train equally costly paths), SGD momentum 0.9, weight decay 4e-5, cross-entropy:

- ``reference``: the authors' ``ShuffleNetV2_OneShot`` (``torch.optim.SGD``; the path passed
  to ``forward`` as their ``train.py`` does), ``torch.get_num_threads()`` threads;
- ``spos_tf``: ``spos_tf.models.step.train_step`` traced once, ``MaskedSGD``, the path from a
  ``SequenceSampler`` (a host callback, as the default sampler of ``spos_tf.train``);
- ``plain`` (unless skipped): ``benchmarks/plain_supernet.py``, stock Keras layers and SGD.

Tracing / warm-up (2 steps each) is excluded; then ``--rounds`` rounds alternate the sides, each
timing ``--steps`` steps after a ``--settle`` pause, so machine load hits all alike. Prints one JSON
line: per-side median step seconds and img/s, ``spos_tf_over_reference`` (img/s ratio; target
>= 1.3 in issue 15) and the load average. Run time at 224 on 2 cores: about 5 minutes.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# ------------------------------------------------------------------------------- PyTorch worker
def worker(args):
    import torch

    sys.path.insert(0, HERE)
    from reference_parity import _import_reference_network  # loads the reference network.py

    ShuffleNetV2_OneShot = _import_reference_network(
        os.path.join(args.reference_dir, "src", "Supernet")
    )
    torch.manual_seed(0)
    model = ShuffleNetV2_OneShot(input_size=args.size, n_class=1000)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=4e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(args.batch, 3, args.size, args.size)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 1000, args.batch))

    def step(path):
        opt.zero_grad()
        loss = loss_fn(model(x, path), y)
        loss.backward()
        opt.step()
        return loss.item()

    info = {"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(info), flush=True)
    for line in sys.stdin:  # a JSON list of paths (op indices): run one step on each
        times = []
        for path in json.loads(line):
            t = time.perf_counter()
            step(path)
            times.append(time.perf_counter() - t)
        print(json.dumps(times), flush=True)


# ------------------------------------------------------------------------------- TF side
def main():
    p = argparse.ArgumentParser()
    p.add_argument("--reference_dir", required=True)
    p.add_argument("--torch_python", default=sys.executable)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--skip", default="", help="comma list of sides not to run: plain")
    p.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="seconds of pause before each side's steps: thread pools that spin after their work "
        "(PyTorch's OpenMP, TensorFlow's) stop competing with the next side",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    net_py = os.path.join(args.reference_dir, "src", "Supernet", "network.py")
    if not os.path.exists(net_py):
        sys.exit(
            f"--reference_dir: {net_py} not found; pass a checkout of "
            "megvii-model/SinglePathOneShot"
        )

    proc = subprocess.Popen(
        [
            args.torch_python,
            os.path.abspath(__file__),
            "--worker",
            f"--reference_dir={args.reference_dir}",
            f"--size={args.size}",
            f"--batch={args.batch}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line:
        sys.exit("the PyTorch worker did not start: see its error above")
    info = json.loads(line)

    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.dirname(HERE))
    import spos_tf
    import tensorflow as tf
    from spos_tf import spaces
    from spos_tf.models.sampling import SequenceSampler

    import plain_supernet
    from supernet_step import _step_function

    space = spaces.get("shufflenet_oneshot", image_size=args.size, num_classes=1000)
    rng = np.random.default_rng(0)
    paths = [space.sample(rng) for _ in range(2 + args.rounds * args.steps)]  # 2 warm-up steps
    ops = [space.indices(a)[0].tolist() for a in paths]  # GENE_KINDS row 0: the op choices
    x = tf.constant(rng.normal(size=(args.batch, args.size, args.size, 3)), tf.float32)
    y = tf.constant(rng.integers(0, 1000, args.batch))
    net = spos_tf.build_supernet(space, seed=0)
    net.set_sampler(SequenceSampler(space, paths))  # step s trains paths[s]
    sup = _step_function(net, spos_tf.MaskedSGD(0.1, 0.9, 4e-5))
    t0 = time.perf_counter()
    sup(x, y).numpy()
    trace = {"spos_tf": round(time.perf_counter() - t0, 1)}
    sup(x, y).numpy()
    sides = {"spos_tf": lambda: sup(x, y).numpy()}
    if "plain" not in args.skip.split(","):
        plain = plain_supernet.build(args.size)
        pstep = plain_supernet.step_function(plain)
        plain_ops = iter([tf.constant(o, tf.int32) for o in ops])
        t0 = time.perf_counter()
        pstep(x, y, next(plain_ops)).numpy()
        trace["plain"] = round(time.perf_counter() - t0, 1)
        pstep(x, y, next(plain_ops)).numpy()
        sides["plain"] = lambda: pstep(x, y, next(plain_ops)).numpy()

    torch_ops = iter(ops)

    def reference(n):
        proc.stdin.write(json.dumps([next(torch_ops) for _ in range(n)]) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            sys.exit("the PyTorch worker stopped: see its error above")
        return json.loads(line)

    reference(2)  # warm-up
    times = {"reference": [], **{s: [] for s in sides}}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        time.sleep(args.settle)
        times["reference"] += reference(args.steps)
        for s, f in sides.items():
            time.sleep(args.settle)
            for _ in range(args.steps):
                t = time.perf_counter()
                f()
                times[s].append(time.perf_counter() - t)
        load.append(os.getloadavg()[0])
    proc.stdin.close()
    proc.wait()
    step_s = {s: float(np.median(t)) for s, t in times.items()}
    out = {
        "size": args.size,
        "batch": args.batch,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "torch": info["torch"],
        "torch_threads": info["threads"],
        "load_avg_1min": [round(v, 2) for v in load],
        "trace_s": trace,
        "step_s": {s: round(v, 4) for s, v in step_s.items()},
        "img_per_s": {s: round(args.batch / v, 2) for s, v in step_s.items()},
        "spos_tf_over_reference": round(step_s["reference"] / step_s["spos_tf"], 3),
    }
    if "plain" in step_s:
        out["spos_tf_over_plain"] = round(step_s["plain"] / step_s["spos_tf"], 3)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
