"""Retraining's final BN pass: small un-augmented pass vs larger augmented passes (issue 12).

Usage:
    python benchmarks/final_bn_pass.py [--arch=1,1,2,2,3] [--workdir=/tmp/final_bn]
        [--flagfile=flags/quickstart.cfg] [--variants=none,small,augmented50,augmented200]

Retrains ``--arch`` from scratch once with the flag file's recipe (no final pass, evaluation on
the test split), then, starting each time from the trained weights, recomputes the BN statistics
exactly (cumulative average, learning rate 0) as ``spos_tf.train --final_bn_batches=N
[--final_bn_augment]`` does, and prints one JSON line per variant with the test and held-out top-1:

- ``none``: the statistics training left (moving averages, momentum 0.9);
- ``small``: 10 batches of ``--eval_batch_size`` un-augmented training images (the pipeline's
  default; the embedded digits' 1,197 training images give 5 batches);
- ``augmentedN``: N batches of training images with the training augmentation.
"""

import argparse
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

import spos_tf  # noqa: E402,F401
from spos_tf.runs import run_dir
from spos_tf.train import config as train  # noqa: E402  (the train app's flags)
from spos_tf import train as train_lib  # noqa: E402
from spos_tf.data import build_dataset  # noqa: E402
from spos_tf.models.evaluate import PathEvaluator  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="1,1,2,2,3")
    p.add_argument("--workdir", default="/tmp/spos_final_bn")
    p.add_argument("--flagfile", default="flags/quickstart.cfg")
    p.add_argument("--variants", default="none,small,augmented50,augmented200")
    args = p.parse_args()
    fv = flags.FlagValues()
    train.define_flags(fv)
    fv(
        [
            "train",
            f"--flagfile={args.flagfile}",
            f"--workdir={args.workdir}",
            f"--arch={args.arch}",
            "--eval_split=test",
            "--noprogress",
        ]
    )
    config = train.config_from_flags(fv)
    record = train_lib.run(config, stream=io.StringIO())
    print(
        json.dumps(
            {
                "trained": args.arch,
                "steps": config.steps,
                "test_accuracy_without_pass": record["val_accuracy"],
            }
        ),
        flush=True,
    )
    space, model, saved = run_dir.restore_model(args.workdir)
    trained = [v.numpy() for v in model.variables]
    data = train_lib.TrainConfig.from_dict(saved).data
    batch = config.eval_batch_size
    splits = {s: build_dataset(data, s, batch, training=False, seed=0) for s in ("test", "holdout")}
    evaluator = PathEvaluator(model)
    for variant in args.variants.split(","):
        for var, value in zip(model.variables, trained):
            var.assign(value)
        used, calib = 0, None
        if variant == "small":
            calib = build_dataset(
                data, "calib", batch, training=False, seed=config.seed, repeat=False
            )
            used = evaluator.recalibrate(calib, 10)
        elif variant.startswith("augmented"):
            calib = build_dataset(
                data,
                "calib",
                batch,
                training=False,
                augment=True,
                seed=config.seed,
                repeat=True,
                drop_remainder=True,
            )
            used = evaluator.recalibrate(calib, int(variant[len("augmented") :]))
        elif variant != "none":
            raise SystemExit(f"unknown variant {variant!r}")
        images = sum(int(x.shape[0]) for x, _ in calib.take(used)) if used else 0
        out = {"variant": variant, "batches": used, "images": images}
        out.update({f"{s}_accuracy": evaluator.evaluate(ds) for s, ds in splits.items()})
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
