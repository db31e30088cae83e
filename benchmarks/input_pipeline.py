"""Training input pipeline throughput per CPU core: full JPEG decode vs windowed decode.

Writes a folder of ImageNet-sized JPEGs (default 200 images, about 500x375, smooth random content
plus noise, quality 90: roughly the size of an ImageNet JPEG) into a temporary directory, then
times ``spos_tf.data.build_dataset(..., "train", training=True)`` with the ``imagenet``
augmentation at 224x224 (cache off, as for ``imagenet2012``) with tf.data's private thread pool set
to ``--cores`` threads (``max_intra_op_parallelism`` 1), alternating "before"
(``decode_window=False``: decode whole, then crop) and "after" (``decode_window=True``:
``decode_and_crop_jpeg`` of the crop window). Also times the decode alone (CPU ms per image, one
thread, whole JPEG vs the crop's window). No download.

    PYTHONPATH=. .venv/bin/python benchmarks/input_pipeline.py --cores=1 --rounds=3

Prints one line per timed run and a summary: median img/s and img/s per core, load average before
and after (the machine may be shared), and images per CPU-second of this process (all threads:
the per-core figure that other jobs on a shared machine disturb least). Expected run time: about
2 minutes with the defaults on a 2-core machine. ``--tiny`` (a few small images, one round) is
what the tests run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np

import spos_tf  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import tensorflow as tf
from spos_tf.data import DataConfig, build_dataset, preprocess


def write_jpegs(root: str, num_images: int, size: tuple[int, int], seed: int = 0) -> int:
    """``num_images`` JPEGs in ``root/<class>/`` (two classes); returns their total bytes.

    Each image is a random 1/8-resolution colour field upsampled to about ``size`` (height,
    width, +-15 %; every fourth one portrait) plus pixel noise, encoded at quality 90 with 4:2:0
    chroma subsampling (libjpeg's default, as most ImageNet files).
    """
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(num_images):
        height, width = (int(s * rng.uniform(0.85, 1.15)) for s in size)
        if i % 4 == 3:
            height, width = width, height
        coarse = rng.uniform(0, 255, (1, max(2, height // 8), max(2, width // 8), 3))
        image = tf.image.resize(coarse.astype(np.float32), (height, width)).numpy()[0]
        image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        folder = os.path.join(root, f"class{i % 2}")
        os.makedirs(folder, exist_ok=True)
        encoded = tf.io.encode_jpeg(image, quality=90).numpy()
        with open(os.path.join(folder, f"{i:05d}.jpg"), "wb") as f:
            f.write(encoded)
        total += len(encoded)
    return total


def pipeline(root: str, *, windowed: bool, cores: int, batch_size: int, image_size: int):
    config = DataConfig(
        name="folder:" + root,
        image_size=image_size,
        train_split="train",
        holdout_split="train[:1]",
        augment="imagenet",
        cache=False,
    )
    ds = build_dataset(config, "train", batch_size, training=True, seed=0, decode_window=windowed)
    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def time_run(ds, warmup: int, batches: int, batch_size: int) -> tuple[float, float]:
    """``(img/s, img per CPU-second)`` over ``batches`` batches after ``warmup`` batches.

    The second figure divides by the CPU time of this process (all threads, ``time.process_time``)
    instead of wall time: images per core-second, which other jobs on a shared machine slow down
    much less than the wall-clock rate.
    """
    iterator = iter(ds)
    for _ in range(warmup):
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    images = batches * batch_size
    return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)


def decode_cost(root: str, rounds: int) -> dict:
    """CPU milliseconds per image of the decode alone: whole JPEG vs the crop's window.

    Each file once per round, in one thread, windows from ``preprocess.crop_window`` with seeds
    ``(0, i)``; medians over ``rounds`` alternated rounds.
    """
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)
    encoded = [tf.io.read_file(p) for p in paths]
    seeds = [tf.constant([0, i], tf.int64) for i in range(len(paths))]

    @tf.function
    def whole(data, seed):
        del seed
        return tf.shape(tf.io.decode_jpeg(data, channels=3))

    @tf.function
    def window(data, seed):
        shape = tf.concat([tf.image.extract_jpeg_shape(data)[:2], [3]], 0)
        begin, size = preprocess.crop_window(shape, seed)
        return tf.shape(preprocess.decode_jpeg_window(data, begin, size))

    costs = {"whole": [], "window": []}
    for fn in (whole, window):  # trace
        fn(encoded[0], seeds[0])
    for _ in range(rounds):
        for name, fn in (("whole", whole), ("window", window)):
            start = time.process_time()
            for data, seed in zip(encoded, seeds):
                fn(data, seed)
            costs[name].append((time.process_time() - start) / len(paths) * 1e3)
    return {f"decode_{k}_cpu_ms": statistics.median(v) for k, v in costs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--cores", type=int, default=1, help="tf.data private thread pool size")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="before/after pairs, alternated")
    parser.add_argument("--tiny", action="store_true", help="a smoke run for the tests")
    args = parser.parse_args(argv)
    if args.tiny:
        args.images, args.height, args.width = 8, 60, 80
        args.batch_size, args.image_size, args.batches, args.warmup, args.rounds = 4, 32, 2, 1, 1

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as root:
        total = write_jpegs(root, args.images, (args.height, args.width))
        print(
            f"{args.images} JPEGs, mean {total / args.images / 1024:.0f} KiB, "
            f"~{args.width}x{args.height}; {args.cores} core(s), batch {args.batch_size}, "
            f"{args.image_size}x{args.image_size}"
        )
        decode = decode_cost(root, max(args.rounds, 3))
        rates = {"before": [], "after": []}
        per_cpu_s = {"before": [], "after": []}
        for round_ in range(args.rounds):
            for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                ds = pipeline(
                    root,
                    windowed=name == "after",
                    cores=args.cores,
                    batch_size=args.batch_size,
                    image_size=args.image_size,
                )
                rate, rate_cpu = time_run(ds, args.warmup, args.batches, args.batch_size)
                rates[name].append(rate)
                per_cpu_s[name].append(rate_cpu)
                print(
                    f"round {round_} {name:6s} {rate:8.1f} img/s wall "
                    f"({rate / args.cores:.1f} per core), {rate_cpu:8.1f} img per CPU-second"
                )
    load_after = os.getloadavg()
    summary = {
        "cores": args.cores,
        "before_img_s": statistics.median(rates["before"]),
        "after_img_s": statistics.median(rates["after"]),
        "load_avg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
    }
    summary["before_per_core"] = summary["before_img_s"] / args.cores
    summary["after_per_core"] = summary["after_img_s"] / args.cores
    summary["before_img_per_cpu_s"] = statistics.median(per_cpu_s["before"])
    summary["after_img_per_cpu_s"] = statistics.median(per_cpu_s["after"])
    summary["speedup_wall"] = summary["after_img_s"] / summary["before_img_s"]
    summary["speedup_cpu"] = summary["after_img_per_cpu_s"] / summary["before_img_per_cpu_s"]
    summary.update(decode)
    summary["cores_for_4000_img_s"] = 4000 / summary["after_img_per_cpu_s"]
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in summary.items()}))
    return summary


if __name__ == "__main__":
    main()
