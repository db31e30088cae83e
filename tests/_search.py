"""Helpers shared by the search tests (not a test module): the tiny search flag file as a config,
history.csv as rows, and one restored supernet evaluator shared by the runs of a test."""

import csv
import os
from pathlib import Path

from absl import flags

from spos_tf.search import __main__ as search
from spos_tf.search import results as search_results
from spos_tf.search import tuner as search_tuner

REPO = Path(__file__).resolve().parents[1]
TINY_FLAGS = REPO / "flags" / "tiny_search.cfg"
MAX_MACS = 2.5e6  # as in flags/tiny_search.cfg
TRIALS, POPULATION = 24, 8


def tiny_config(supernet_dir, workdir, *extra, flagfile=TINY_FLAGS):
    """The SearchConfig of ``flagfile`` (default flags/tiny_search.cfg), parsed by the app's own
    flag definitions."""
    fv = flags.FlagValues()
    search.define_flags(fv)
    fv(
        [
            "search",
            f"--flagfile={flagfile}",
            f"--supernet_dir={supernet_dir}",
            f"--workdir={workdir}",
            *extra,
        ]
    )
    return search.config_from_flags(fv)


def read_history(workdir):
    with open(os.path.join(workdir, search_results.HISTORY_FILE)) as f:
        return list(csv.DictReader(f))


def share_evaluator(monkeypatch):
    """Each search run restores the supernet as a fresh process would; reuse the first restored
    evaluator (and its traces) in every run of the test to keep it short."""
    cached = {}
    make = search_tuner.make_evaluator
    monkeypatch.setattr(
        search_tuner, "make_evaluator", lambda c: cached.setdefault("evaluator", make(c))
    )
