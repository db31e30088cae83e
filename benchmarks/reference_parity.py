"""Logit parity between the authors' PyTorch networks and spos_tf with imported weights.

Usage:
    python benchmarks/reference_parity.py --reference_dir=<checkout of megvii-model/SinglePathOneShot> \
        [--torch_python=<python with torch>] [--paths=5] [--batch=4] [--seed=0] \
        [--arch=2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3]

Needs the reference's model files (``src/Supernet/{network,blocks}.py`` and
``src/Evaluation/template/{network,blocks}.py`` of the user's checkout; nothing of them is in
spos_tf) and PyTorch. PyTorch may live in another interpreter than TensorFlow: ``--torch_python``
runs the PyTorch side as a subprocess of that interpreter, which exchanges ``.npz`` files with the
TensorFlow side (default: this interpreter).

What it does:
  1. PyTorch side: builds the reference supernet and the stand-alone network of ``--arch``, fills
     every weight with seeded random values (He-normal convs, random affine BN parameters), sets
     the BN running statistics to the exact statistics of random images (cumulative average in
     training mode, over all the paths below for the supernet), and computes eval-mode logits of
     ``--batch`` random RGB images (fed as the reference's ToBGRTensor does: BGR, 0..255) on
     ``--paths`` random paths of the supernet and on the stand-alone network. Saves the two
     state_dicts, the images and the logits as .npz.
  2. TensorFlow side: ``python -m spos_tf.import_reference`` on each .npz (the real import path,
     run directory included), ``run_dir.restore_model`` (what ``spos_tf.search`` and
     ``spos_tf.export`` do), preprocessing ``reference`` on the RGB uint8 images, the same paths.
  3. Prints per path the max |logit difference| and the largest |logit|, for ``padding=reference``
     (the import) and, for contrast, the same weights in a ``padding=same`` network. Target:
     max |difference| <= 1e-4 in float32. Exit status 1 if any path misses it.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER_ARCH = "2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3"
TARGET = 1e-4


# ------------------------------------------------------------------------------- PyTorch side
def _import_reference_network(folder):
    """``ShuffleNetV2_OneShot`` of ``folder/network.py`` (its ``from blocks import`` resolved in
    ``folder``; the two folders both name their modules ``network`` and ``blocks``)."""
    import importlib

    for name in ("network", "blocks"):
        sys.modules.pop(name, None)
    sys.path.insert(0, folder)
    try:
        return importlib.import_module("network").ShuffleNetV2_OneShot
    finally:
        sys.path.remove(folder)


def _randomize(model, torch, generator):
    for name, tensor in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        if tensor.ndim == 4:  # conv, OIHW: He-normal over the fan-in of one group
            fan_in = tensor.shape[1] * tensor.shape[2] * tensor.shape[3]
            value = torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif tensor.ndim == 2:  # classifier
            value = torch.randn(tensor.shape, generator=generator) / tensor.shape[1] ** 0.5
        elif name.endswith(".weight"):  # affine BN gamma
            value = 0.5 + torch.rand(tensor.shape, generator=generator)
        elif name.endswith(".bias"):  # affine BN beta
            value = 0.1 * torch.randn(tensor.shape, generator=generator)
        else:  # running statistics: set by _calibrate
            continue
        tensor.copy_(value)


def _calibrate(model, torch, forwards):
    """Exact BN statistics of the images over ``forwards`` (cumulative average)."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        for forward in forwards:
            forward()
    model.eval()


def torch_side(args):
    import torch

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    images = rng.integers(0, 256, (args.batch, 224, 224, 3), dtype=np.uint8)  # RGB, NHWC
    bgr = torch.from_numpy(np.ascontiguousarray(images[..., ::-1].transpose(0, 3, 1, 2))).float()
    paths = rng.integers(0, 4, (args.paths, 20))
    src = os.path.join(args.reference_dir, "src")
    out = {}

    supernet = _import_reference_network(os.path.join(src, "Supernet"))()
    _randomize(supernet, torch, generator)
    _calibrate(supernet, torch, [lambda p=p: supernet(bgr, p.tolist()) for p in paths])
    with torch.no_grad():
        out["supernet_logits"] = np.stack([supernet(bgr, p.tolist()).numpy() for p in paths])
    np.savez(
        os.path.join(args.exchange, "supernet.npz"),
        **{k: v.numpy() for k, v in supernet.state_dict().items()},
    )

    arch = [int(c) for c in args.arch.split(",")]
    standalone = _import_reference_network(os.path.join(src, "Evaluation", "template"))(
        architecture=arch, channels_scales=(1.0,) * 20
    )
    _randomize(standalone, torch, generator)
    _calibrate(standalone, torch, [lambda: standalone(bgr)])
    with torch.no_grad():
        out["standalone_logits"] = standalone(bgr).numpy()
    # What a DataParallel checkpoint looks like: every key under "module.".
    np.savez(
        os.path.join(args.exchange, "standalone.npz"),
        **{"module." + k: v.numpy() for k, v in standalone.state_dict().items()},
    )
    np.savez(os.path.join(args.exchange, "io.npz"), images=images, paths=paths, **out)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "supernet_tensors": len(supernet.state_dict()),
                "standalone_tensors": len(standalone.state_dict()),
            }
        )
    )


# ------------------------------------------------------------------------------- TF side
def _import(checkpoint, kind, workdir):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "spos_tf.import_reference",
            f"--checkpoint={checkpoint}",
            f"--kind={kind}",
            f"--workdir={workdir}",
        ],
        check=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )


def _same_padding_twin(space, model, arch=None):
    import spos_tf

    same = space.replace(padding="same")
    twin = (
        spos_tf.build_standalone(same, arch) if arch is not None else spos_tf.build_supernet(same)
    )
    twin.set_weights(model.get_weights())
    return twin


def tf_side(args, torch_info):
    sys.path.insert(0, ROOT)
    import spos_tf  # noqa: F401
    import tensorflow as tf

    from spos_tf import run_dir
    from spos_tf.data.preprocess import finish

    io = np.load(os.path.join(args.exchange, "io.npz"))
    x = finish(tf.constant(io["images"]), "reference")
    rows = []
    for kind in ("supernet", "standalone"):
        workdir = os.path.join(args.exchange, f"run_{kind}")
        _import(os.path.join(args.exchange, f"{kind}.npz"), kind, workdir)
        space, model, config = run_dir.restore_model(workdir)
        arch = space.parse(config["arch"]) if config.get("arch") else None
        twin = _same_padding_twin(space, model, arch)
        if kind == "supernet":
            cases = [
                (",".join(map(str, p)), io["supernet_logits"][i]) for i, p in enumerate(io["paths"])
            ]
        else:
            cases = [(config["arch"], io["standalone_logits"])]
        for path, want in cases:
            call = dict(arch=space.indices(space.parse(path))) if kind == "supernet" else {}
            got = model(x, training=False, **call).numpy()
            same = twin(x, training=False, **call).numpy()
            rows.append(
                {
                    "kind": kind,
                    "path": path,
                    "max_abs_diff": float(np.max(np.abs(got - want))),
                    "max_abs_logit": float(np.max(np.abs(want))),
                    "max_abs_diff_padding_same": float(np.max(np.abs(same - want))),
                    "top1_agree": float(np.mean(got.argmax(-1) == want.argmax(-1))),
                }
            )
    worst = max(r["max_abs_diff"] for r in rows)
    print(
        f"{'kind':<11} {'path':<40} {'max|dlogit|':>12} {'max|logit|':>11} "
        f"{'padding=same':>13} {'top1 agree':>10}"
    )
    for r in rows:
        print(
            f"{r['kind']:<11} {r['path']:<40} {r['max_abs_diff']:>12.3g} "
            f"{r['max_abs_logit']:>11.3g} {r['max_abs_diff_padding_same']:>13.3g} "
            f"{r['top1_agree']:>10.2f}"
        )
    summary = {
        "torch": torch_info,
        "batch": int(io["images"].shape[0]),
        "worst_max_abs_diff": worst,
        "target": TARGET,
        "pass": worst <= TARGET,
    }
    print(json.dumps(summary))
    return 0 if worst <= TARGET else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--reference_dir",
        required=True,
        help="checkout of megvii-model/SinglePathOneShot (holds src/Supernet)",
    )
    p.add_argument(
        "--torch_python",
        default=sys.executable,
        help="interpreter with PyTorch for the reference side (default: this one)",
    )
    p.add_argument("--paths", type=int, default=5, help="random supernet paths")
    p.add_argument("--batch", type=int, default=4, help="random 224x224 images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arch", default=PAPER_ARCH, help="stand-alone architecture")
    p.add_argument("--exchange", default=None, help=argparse.SUPPRESS)  # set for the torch side
    p.add_argument("--torch_side", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    for sub in (
        "Supernet/network.py",
        "Supernet/blocks.py",
        "Evaluation/template/network.py",
        "Evaluation/template/blocks.py",
    ):
        if not os.path.isfile(os.path.join(args.reference_dir, "src", sub)):
            p.error(
                f"{os.path.join(args.reference_dir, 'src', sub)} is missing: --reference_dir "
                f"must be a checkout of megvii-model/SinglePathOneShot"
            )
    if args.torch_side:
        torch_side(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="spos_parity_") as exchange:
        cmd = [
            args.torch_python,
            os.path.abspath(__file__),
            "--torch_side",
            f"--reference_dir={args.reference_dir}",
            f"--paths={args.paths}",
            f"--batch={args.batch}",
            f"--seed={args.seed}",
            f"--arch={args.arch}",
            f"--exchange={exchange}",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.stderr.write(done.stdout + done.stderr)
            sys.exit(f"the PyTorch side failed (exit {done.returncode}): {' '.join(cmd)}")
        torch_info = json.loads(done.stdout.strip().splitlines()[-1])
        args.exchange = exchange
        return tf_side(args, torch_info)


if __name__ == "__main__":
    sys.exit(main())
