r"""Does the supernet rank architectures? Supernet accuracy vs accuracy trained from scratch.

    python -m spos_tf.rank --flagfile=flags/quickstart_rank.cfg --supernet_dir=/tmp/qs \
        --workdir=/tmp/qs_rank
    python -m spos_tf.rank --flagfile=flags/rank.cfg --supernet_dir=/ckpt/supernet \
        --data_dir=$TFDS --workdir=/ckpt/rank --shard=0/8      # one process per shard, then
    python -m spos_tf.rank --flagfile=flags/rank.cfg --supernet_dir=/ckpt/supernet \
        --workdir=/ckpt/rank --merge                            # the statistics of all shards
    python -m spos_tf.rank --supernet_dir=/ckpt/nb201 --workdir=/ckpt/nb201_rank \
        --ground_truth=nats_tss_test_accuracy.csv:CIFAR10TestAccuracy200Epochs \
        --select=random --num_archs=300     # NAS-Bench-201: the table's accuracies, no training
    python -m spos_tf.rank ... --score=supernet+synflow   # the same command, reusing its supernet
                                # scores: adds the supernet's rank averaged with SynFlow's
                                # (or supernet+macs, supernet+naswot, supernet+synflow+naswot),
                                # reported as that combination

The flags are the fields of :class:`spos_tf.rank.run.RankConfig` (defined there once); all logic
lives in :mod:`spos_tf.rank.run`. Writes ``ranking.csv``, ``ranking.json``, ``ranking.png`` and
TensorBoard HParams sessions into ``--workdir``; rerunning the same command resumes.

Exit status: 0 done (also when other shards still run), 2 bad input (the message names the fix;
nothing was written).
"""

from __future__ import annotations

import sys
import time

from absl import app, flags

from spos_tf.runs import app as app_common
from spos_tf.runs import config_flags


def define_flags(fv=None) -> None:
    from spos_tf.rank.run import RankConfig

    config_flags.define_flags(RankConfig, fv)


def main(argv):
    app_common.start(argv)
    from spos_tf.rank import run as rank_lib
    from spos_tf.runs import run_dir

    start = time.monotonic()
    try:
        result = rank_lib.run(config_flags.from_flags(rank_lib.RankConfig))
    except (ValueError, FileNotFoundError, run_dir.RunDirError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"Done in {time.monotonic() - start:.0f} s: {rank_lib.describe(result)}\n"
        f"See {flags.FLAGS.workdir}/ranking.json and ranking.png"
    )
    return 0


def run_main():
    define_flags()
    # --retrain_flagfile is required unless --ground_truth (RankConfig.validate says so)
    flags.mark_flags_as_required(["supernet_dir", "workdir"])
    app.run(main)


if __name__ == "__main__":
    run_main()
