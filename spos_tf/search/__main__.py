r"""Evolutionary (or random) architecture search on a trained supernet.

    python -m spos_tf.search --flagfile=flags/quickstart_search.cfg --supernet_dir=/tmp/qs \
        --workdir=/tmp/qs_search
    python -m spos_tf.search --flagfile=flags/search.cfg --supernet_dir=/ckpt/supernet \
        --data_dir=$TFDS --workdir=/ckpt/search

The flags are the fields of :class:`spos_tf.search.config.SearchConfig` (defined there once);
all logic lives in :func:`spos_tf.search.run.run` (:mod:`spos_tf.search` maps the modules).
Writes ``history.csv``, ``best.json`` and ``search.png`` into ``--workdir``; rerunning the same
command resumes a killed search. For a distributed search (one chief serving the oracle, workers
scoring candidates) set ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT`` (see the README).

Exit status: 0 done, 2 bad input (the message names the fix; nothing was written), 1 a candidate
could not be evaluated (rerun to resume once fixed).
"""

from __future__ import annotations

import sys
import time

from absl import app, flags

from spos_tf.runs import app as app_common

# The app's flags and the config they build are the library's (spos_tf.search.config), which
# ranking and the pipeline parse flag files with too; tests reach them from here.
from spos_tf.search.config import config_from_flags, define_flags


def main(argv):
    app_common.start(argv)
    from spos_tf.search.run import run as run_search
    from spos_tf.search import seeds as search_seeds
    from spos_tf.search import tuner as search_tuner

    start = time.monotonic()
    try:
        summary = run_search(config_from_flags(flags.FLAGS))
    except search_tuner.EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    best = summary["best"]
    if best:
        print(
            f"Done in {time.monotonic() - start:.0f} s ({summary['evaluated']} candidates "
            f"evaluated now, {best['evaluated']} in all): best {best['arch']} accuracy "
            f"{best['accuracy']:.4f} {best['costs']}; see {flags.FLAGS.workdir}/best.json"
        )
        if "comparison" in summary:
            print(search_seeds.describe_seeds(summary["comparison"]))
    elif summary["role"] == "worker":
        print(
            f"Worker done in {time.monotonic() - start:.0f} s: {summary['evaluated']} "
            f"candidates evaluated"
        )
    return 0


def run_main():
    define_flags(flags.FLAGS)
    flags.mark_flags_as_required(["supernet_dir", "workdir"])
    app.run(main)


if __name__ == "__main__":
    run_main()
