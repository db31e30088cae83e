"""Logit parity between the authors' PyTorch networks and spos_tf with imported weights.

Usage:
    python benchmarks/reference_parity.py --reference_dir=<checkout of megvii-model/SinglePathOneShot> \
        [--torch_python=<python with torch>] [--paths=5] [--batch=4] [--seed=0] \
        [--arch=2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3]
    python benchmarks/reference_parity.py --reference_dir=<...> --images=<folder of JPEGs> \
        [--torch_python=<python with torch, torchvision, opencv, pillow>] \
        [--arch=0,0,3,1,1,1,0,0,2,0,2,1,1,0,2,0,2,1,3,2|6,5,3,5,2,6,3,4,2,5,7,5,4,6,7,4,4,5,4,3]

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

``--arch`` may carry channel-scale indices after ``|`` (ShuffleNet-Series ``OneShot/``'s block +
channel networks; scale ``[0.2, 0.4, ..., 1.6][index]`` per block, the Evaluation template's
``channels_scales``); the import then reads them off the shapes.

End-to-end mode (``--images=<folder>``: every ``.jpg``/``.jpeg``/``.png`` below it, sorted by
path; a few dozen are enough), the stand-alone network only:
  1. PyTorch side: each file is read by torchvision's ``ImageFolder`` loader (PIL, RGB) and
     transformed by the release's own evaluation transform, the ``transforms.Compose([
     OpencvResize(256), transforms.CenterCrop(224), ToBGRTensor()])`` of its
     ``src/Evaluation/template/train.py`` (imported from the checkout: OpenCV resize of the short
     side to 256, centre crop 224, BGR 0..255). The network's BN statistics are the exact ones of
     these images; the eval-mode logits are saved with the state_dict.
  2. TensorFlow side: the same files as an image folder through spos_tf's input pipeline
     (``build_dataset(..., "test", training=False)``) with the imported run's data config
     (``preprocessing=reference``, ``eval_resize=reference``; ``eval_crop_fraction`` 0.875, the
     release's 224/256), into the imported network.
  3. Prints max |input difference| (pixels on 0..255 after each side's preprocessing), max
     |logit difference| end to end, the same for the release's own inputs fed to our network
     (the network alone), and top-1 agreement. Exit status 1 if top-1 agreement is below 1 or
     the network alone misses the 1e-4 target.
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
SCALES = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6)  # ShuffleNet-Series OneShot/'s scale_list
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
RELEASE_MODULES = ("network", "blocks", "utils", "flops", "train")


def _import_reference_module(folder, module):
    """Module ``module`` of ``folder`` (its own imports, ``from blocks import`` etc., resolved in
    ``folder``; the release's folders all name their modules ``network``, ``blocks``, ...)."""
    import importlib

    for name in RELEASE_MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(folder)


def _import_reference_network(folder):
    """``ShuffleNetV2_OneShot`` of ``folder/network.py``."""
    return _import_reference_module(folder, "network").ShuffleNetV2_OneShot


def parse_arch(text):
    """``(ops, channels_scales)`` of ``--arch``: ``ops`` or ``ops|scale indices``."""
    ops, _, scale_ids = text.partition("|")
    ops = [int(c) for c in ops.split(",")]
    scales = [SCALES[int(c)] for c in scale_ids.split(",")] if scale_ids else [1.0] * len(ops)
    if len(scales) != len(ops):
        raise ValueError(f"--arch={text!r}: {len(ops)} ops but {len(scales)} channel scales")
    return ops, scales


def image_files(folder):
    """Every image below ``folder``, sorted by path."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def _import_torchvision():
    """torchvision; where its compiled operators do not load (a CUDA build of torchvision beside
    a CPU build of torch), without their meta registrations, which the transforms and the image
    loader used here do not need. Returns whether the operators loaded."""
    try:
        import torchvision  # noqa: F401

        return True
    except RuntimeError:
        import types

        for name in list(sys.modules):
            if name.startswith("torchvision"):
                del sys.modules[name]
        for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
            sys.modules[name] = types.ModuleType(name)
        import torchvision  # noqa: F401

        return False


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


def torch_side_images(args):
    """End-to-end mode, PyTorch side: the release's eval transform and stand-alone network."""
    import torch

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    ops_loaded = _import_torchvision()
    from torchvision import datasets, transforms

    template = os.path.join(args.reference_dir, "src", "Evaluation", "template")
    train = _import_reference_module(template, "train")  # the release's transforms and network
    transform = transforms.Compose(
        [train.OpencvResize(256), transforms.CenterCrop(224), train.ToBGRTensor()]
    )
    files = image_files(args.images)
    if not files:
        raise SystemExit(f"--images={args.images!r} holds no {'/'.join(IMAGE_EXTENSIONS)} files")
    x = torch.stack([transform(datasets.folder.default_loader(f)) for f in files])
    ops, scales = parse_arch(args.arch)
    standalone = train.ShuffleNetV2_OneShot(architecture=ops, channels_scales=scales)
    _randomize(standalone, torch, generator)
    _calibrate(standalone, torch, [lambda: standalone(x)])
    with torch.no_grad():
        logits = standalone(x).numpy()
    np.savez(
        os.path.join(args.exchange, "standalone.npz"),
        **{"module." + k: v.numpy() for k, v in standalone.state_dict().items()},
    )
    bgr = x.numpy().transpose(0, 2, 3, 1)  # NHWC, BGR, integer values 0..255
    np.savez(
        os.path.join(args.exchange, "io.npz"),
        files=np.array(files),
        inputs=bgr.astype(np.uint8),
        standalone_logits=logits,
    )
    import cv2
    import PIL
    import torchvision

    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "torchvision": torchvision.__version__,
                "torchvision_ops_loaded": ops_loaded,
                "opencv": cv2.__version__,
                "pillow": PIL.__version__,
                "images": len(files),
                "standalone_tensors": len(standalone.state_dict()),
            }
        )
    )


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

    arch, scales = parse_arch(args.arch)
    standalone = _import_reference_network(os.path.join(src, "Evaluation", "template"))(
        architecture=arch, channels_scales=scales
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


def _folder_per_image(files, root):
    """An image folder ``root/<index>/<file>``: one class per file, so the pipeline's labels give
    each image's index in ``files`` whatever order the folder reader uses."""
    for i, path in enumerate(files):
        os.makedirs(os.path.join(root, f"{i:05d}"))
        os.symlink(os.path.abspath(path), os.path.join(root, f"{i:05d}", os.path.basename(path)))
    return root


def tf_side_images(args, torch_info):
    """End-to-end mode, TensorFlow side: spos_tf's pipeline with the imported run's data config."""
    sys.path.insert(0, ROOT)
    import dataclasses

    import spos_tf  # noqa: F401
    import tensorflow as tf

    from spos_tf.runs import run_dir
    from spos_tf.data import DataConfig, build_dataset

    io = np.load(os.path.join(args.exchange, "io.npz"))
    files = [str(f) for f in io["files"]]
    workdir = os.path.join(args.exchange, "run_standalone")
    _import(os.path.join(args.exchange, "standalone.npz"), "standalone", workdir)
    space, model, config = run_dir.restore_model(workdir)
    data = dataclasses.replace(
        DataConfig(**config["data"]),
        name="folder:" + _folder_per_image(files, os.path.join(args.exchange, "images")),
        data_dir=None,
        test_split="train",
        eval_crop_fraction=224 / 256,  # the release's OpencvResize(256) + CenterCrop(224)
        cache=False,
    )
    images, labels = [], []
    for x, y in build_dataset(data, "test", 16, training=False, seed=0):
        images.append(x.numpy())
        labels.append(y.numpy())
    order = np.argsort(np.concatenate(labels))
    ours = np.concatenate(images)[order]  # float32 NHWC BGR 0..255, in files' order
    theirs = io["inputs"].astype(np.float32)
    want = io["standalone_logits"]
    got = model(tf.constant(ours), training=False).numpy()
    network_only = model(tf.constant(theirs), training=False).numpy()
    pixel_diff = np.abs(ours - theirs)
    summary = {
        "versions": torch_info,
        "arch": config["arch"],
        "space": config["space"],
        "data": {k: config["data"][k] for k in ("preprocessing", "eval_resize")},
        "images": len(files),
        "input_max_abs_diff": float(pixel_diff.max()),
        "input_values_differing": float(np.mean(pixel_diff > 0)),
        "images_with_identical_input": int(np.sum(pixel_diff.reshape(len(files), -1).max(1) == 0)),
        "max_abs_logit": float(np.max(np.abs(want))),
        "max_abs_diff_end_to_end": float(np.max(np.abs(got - want))),
        "max_abs_diff_network_only": float(np.max(np.abs(network_only - want))),
        "top1_agree_end_to_end": float(np.mean(got.argmax(-1) == want.argmax(-1))),
        "top1_agree_network_only": float(np.mean(network_only.argmax(-1) == want.argmax(-1))),
        "target_network_only": TARGET,
    }
    summary["pass"] = bool(
        summary["top1_agree_end_to_end"] == 1.0 and summary["max_abs_diff_network_only"] <= TARGET
    )
    for key in (
        "images",
        "input_max_abs_diff",
        "input_values_differing",
        "images_with_identical_input",
        "max_abs_logit",
        "max_abs_diff_end_to_end",
        "max_abs_diff_network_only",
        "top1_agree_end_to_end",
    ):
        print(f"{key:<30} {summary[key]:.4g}")
    print(json.dumps(summary))
    return 0 if summary["pass"] else 1


def tf_side(args, torch_info):
    sys.path.insert(0, ROOT)
    import spos_tf  # noqa: F401
    import tensorflow as tf

    from spos_tf.runs import run_dir
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
    p.add_argument(
        "--arch",
        default=PAPER_ARCH,
        help="stand-alone architecture: ops, or ops|channel-scale indices (ShuffleNet-Series)",
    )
    p.add_argument(
        "--images",
        default=None,
        help="end-to-end mode: a folder of JPEGs through the release's eval transform and ours",
    )
    p.add_argument("--exchange", default=None, help=argparse.SUPPRESS)  # set for the torch side
    p.add_argument("--torch_side", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    needed = ["Evaluation/template/network.py", "Evaluation/template/blocks.py"]
    needed += (
        [
            "Evaluation/template/train.py",
            "Evaluation/template/utils.py",
            "Evaluation/template/flops.py",
        ]
        if args.images
        else ["Supernet/network.py", "Supernet/blocks.py"]
    )
    if args.images and not os.path.isdir(args.images):
        p.error(f"--images={args.images!r} is not a folder")
    for sub in needed:
        if not os.path.isfile(os.path.join(args.reference_dir, "src", sub)):
            p.error(
                f"{os.path.join(args.reference_dir, 'src', sub)} is missing: --reference_dir "
                f"must be a checkout of megvii-model/SinglePathOneShot"
            )
    if args.torch_side:
        (torch_side_images if args.images else torch_side)(args)
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
        ] + ([f"--images={os.path.abspath(args.images)}"] if args.images else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.stderr.write(done.stdout + done.stderr)
            sys.exit(f"the PyTorch side failed (exit {done.returncode}): {' '.join(cmd)}")
        torch_info = json.loads(done.stdout.strip().splitlines()[-1])
        args.exchange = exchange
        return (tf_side_images if args.images else tf_side)(args, torch_info)


if __name__ == "__main__":
    sys.exit(main())
