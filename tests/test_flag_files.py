"""Every flag file in flags/ has its header (command, run time, expected result) and parses into a
valid config with each app that its header runs it with (``python -m spos_tf.<app>
--flagfile=flags/<name>``). Parsing only: no data, no TensorFlow run."""

import contextlib
import re
import shlex
from pathlib import Path

import pytest
from absl import flags

from spos_tf.runs import config_flags
from spos_tf.pipeline import __main__ as pipeline
from spos_tf.rank import __main__ as rank
from spos_tf.search import __main__ as search
from spos_tf.train import __main__ as train
from spos_tf.rank.run import RankConfig

REPO = Path(__file__).resolve().parents[1]
FLAG_FILES = sorted(p.name for p in (REPO / "flags").glob("*.cfg"))
# app -> (define_flags(fv), config_from_flags(fv)); placeholders for the flags that the header's
# command passes on the command line (paths are never opened by validate()).
APPS = {
    "train": (train.define_flags, train.config_from_flags),
    "search": (search.define_flags, search.config_from_flags),
    "pipeline": (pipeline.define_flags, pipeline.config_from_flags),
    "rank": (rank.define_flags, lambda fv: config_flags.from_flags(RankConfig, fv)),
}
COMMAND_LINE_FLAGS = {
    "workdir": "/tmp/flag_file_test",
    "supernet_dir": "/tmp/supernet",
    "retrain_flagfile": "flags/tiny_retrain.cfg",
}

PLACEHOLDERS = {
    "--shard=i/n": "--shard=0/2",
    # a table that exists in the repository, and a limit, for LUT and MS
    "--latency_table=LUT": "--latency_table=benchmarks/latency/fbnet_tflite_float32.json",
    "--max_latency_ms=MS": "--max_latency_ms=66.8",
}


def header(name):
    lines = []
    for line in (REPO / "flags" / name).read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def commands_of(name):
    """``[(app, [args])]``: each command of the header that runs ``flags/<name>``, continuation
    lines joined, ``$VARIABLES`` replaced by a path and :data:`PLACEHOLDERS` by values."""
    text = re.sub(r"\\\n#\s*", " ", header(name))
    out = []
    for match in re.finditer(
        rf"python -m spos_tf\.(\w+) (--flagfile=flags/{re.escape(name)}\b.*)", text
    ):
        args = []
        for token in shlex.split(match.group(2)):
            if not token.startswith("--"):
                break
            token = re.sub(r"\$\w+", "/tmp/data", token.rstrip(",)"))
            args.append(PLACEHOLDERS.get(token, token))
        out.append((match.group(1), args))
    return out


def test_every_flag_file_is_found():
    assert len(FLAG_FILES) >= 20 and "tiny_supernet.cfg" in FLAG_FILES


@pytest.mark.parametrize("name", FLAG_FILES)
def test_flag_file_parses_with_the_apps_its_header_names(name):
    text = header(name)
    for key in ("Command:", "Run time:", "Expected:"):
        assert key in text, f"{name}: header lacks {key!r}"
    commands = commands_of(name)
    assert commands, f"{name}: no `python -m spos_tf.<app> --flagfile=flags/{name}` in the header"
    for app, args in commands:
        assert app in APPS, f"{name}: unknown app spos_tf.{app}"
        define, to_config = APPS[app]
        fv = flags.FlagValues()
        define(fv)
        given = {a.split("=", 1)[0][2:] for a in args}
        extra = [
            f"--{k}={v}"
            for k, v in COMMAND_LINE_FLAGS.items()
            if k in fv
            and k not in given
            and fv[k].value is None
            # a ground-truth ranking (NAS-Bench-201 table) trains nothing: no retrain flag file
            and not (k == "retrain_flagfile" and "ground_truth" in given)
        ]
        with contextlib.chdir(REPO):  # nested --flagfile= paths are relative to the repo root
            fv([app, *args, *extra])
            config = to_config(fv)
            if hasattr(config, "validate"):
                config.validate()
