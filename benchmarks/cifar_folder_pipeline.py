"""CIFAR-10 as an image folder through the training input pipeline: time to first batch, then
steady-state images per second (issue 19: CIFAR-10 without a download).

Reads ``<cifar10_root>/{train,test}/<class>/<image>`` (32x32 JPEGs or PNGs) with NAS-Bench-201's
splits (``--train_split=train[:50%]``, ``--holdout_split=train[50%:]``, ``--test_split=test``) and
times ``spos_tf.data.build_dataset(config, "train", batch, training=True)`` at ``image_size=32``
with the ``cifar`` augmentation (4-pixel zero pad, random crop, horizontal flip):

* ``first_batch_s``: from ``build_dataset`` to the first batch, which includes reading and
  decoding every image of the split once into the in-memory cache of decoded ``uint8`` images
  (``build_s`` of it is ``build_dataset`` itself, where the cache is filled);
* ``img_s``: steady state, images per second over ``--batches`` batches after ``--warmup``
  (reshuffled epochs of the cached images: shuffle, augment, normalise, batch, prefetch), and
  ``img_per_cpu_s``: the same images divided by this process's CPU time (all threads), the figure
  that other jobs on a shared machine disturb least.

* ``holdout_first_batch_s``: the same for the held-out half (``train[50%:]``, evaluation
  preprocessing, batch 1,000), as the search reads it: decoding its 25,000 images once.

Also prints the class counts of the two halves of ``train`` (the folder's fixed, seed-free order
mixes the classes). No download; nothing is written.

    PYTHONPATH=. .venv/bin/python benchmarks/cifar_folder_pipeline.py --root=<cifar10_root>

Expected run time: about half a minute on 2 cores (the decode of 25,000 JPEGs dominates).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from spos_tf.data import DataConfig, build_dataset, sources

SPLITS = {"train_split": "train[:50%]", "holdout_split": "train[50%:]", "test_split": "test"}


def config_for(root: str, augment: str = "cifar") -> DataConfig:
    return DataConfig(name="folder:" + root, image_size=32, augment=augment, **SPLITS)


def half_class_counts(config: DataConfig) -> dict:
    """``{split spec: [examples of class 0, 1, ...]}`` for the two halves (labels only, the
    files are listed, not read)."""
    source = sources.open_source(config)
    counts = {}
    for field in ("train_split", "holdout_split"):
        spec = getattr(config, field)
        labels = collections.Counter()
        for split, start, stop in source.absolute(spec, field):
            rows = source.builder._split_examples[split][start:stop]
            labels.update(source.builder.info.features["label"].str2int(r.label) for r in rows)
        counts[spec] = [labels[c] for c in range(source.num_classes)]
    return counts


def measure(config: DataConfig, batch_size: int, warmup: int, batches: int, seed: int = 0):
    wall = time.perf_counter()
    ds = build_dataset(config, "train", batch_size, training=True, seed=seed)
    build_s = time.perf_counter() - wall
    iterator = iter(ds)
    images, _ = next(iterator)
    first_batch_s = time.perf_counter() - wall
    assert images.shape == (batch_size, 32, 32, 3), images.shape
    for _ in range(warmup):
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    del iterator, ds
    start = time.perf_counter()
    holdout = build_dataset(config, "holdout", 1000, training=False, seed=seed)
    next(iter(holdout))
    holdout_first_batch_s = time.perf_counter() - start
    return {
        "build_s": build_s,
        "first_batch_s": first_batch_s,
        "img_s": batches * batch_size / wall,
        "img_per_cpu_s": batches * batch_size / cpu,
        "holdout_first_batch_s": holdout_first_batch_s,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root", default=None, help="<cifar10_root> holding train/<class>/ and test/<class>/"
    )
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batches", type=int, default=200, help="timed batches")
    parser.add_argument("--augment", default="cifar")
    args = parser.parse_args(argv)
    if not args.root:
        parser.error(
            "give the CIFAR-10 image folder: --root=<cifar10_root> with "
            "<cifar10_root>/{train,test}/<class>/<image> (32x32 images)"
        )
    if not os.path.isdir(os.path.join(args.root, "train")):
        parser.error(f"--root={args.root!r} has no train/ sub-folder (<root>/train/<class>/...)")
    config = config_for(args.root, args.augment)
    load_before = os.getloadavg()
    counts = half_class_counts(config)
    for spec, per_class in counts.items():
        print(f"{spec}: {sum(per_class)} images, per class {per_class}")
    result = measure(config, args.batch_size, args.warmup, args.batches)
    result.update(
        batch_size=args.batch_size,
        batches=args.batches,
        augment=args.augment,
        train_images=sum(counts[SPLITS["train_split"]]),
        cores=os.cpu_count(),
        load_avg_1m_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        class_counts=counts,
    )
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))
    return result


if __name__ == "__main__":
    main()
