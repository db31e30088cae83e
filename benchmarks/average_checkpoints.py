"""Average a supernet run's saved checkpoints into a new run directory (issue 20: checkpoint weight
averaging, SWA-style).

Usage:
    python benchmarks/average_checkpoints.py --workdir=<supernet run> --steps=5850,7800,9750 \
        --out=<new run dir>

``--out`` is then read by ``spos_tf.rank`` / ``spos_tf.search`` / ``spos_tf.export`` as
``--supernet_dir`` like any trained run; each candidate's BN is recalibrated when scored. See
:func:`spos_tf.train.average.average_checkpoints`. Cost: seconds (one checkpoint read per step).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import spos_tf  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from spos_tf.runs import run_dir  # noqa: E402
from spos_tf.train import average  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a finished spos_tf.train run")
    parser.add_argument(
        "--steps", required=True, help="checkpoint steps to average, comma-separated"
    )
    parser.add_argument("--out", required=True, help="the new run directory (must not hold a run)")
    args = parser.parse_args(argv)
    try:
        steps = [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        parser.error(
            f"--steps={args.steps!r}: give integers separated by commas, e.g. 5850,7800,9750"
        )
    try:
        path = average.average_checkpoints(args.workdir, steps, args.out)
    except (average.AverageError, run_dir.RunDirError, run_dir.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}: the mean of steps {sorted(set(steps))} of {args.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
