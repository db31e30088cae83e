"""A flag file parsed into the typed config of the app that reads it: the one place where a library
(ranking, the pipeline, a benchmark) turns ``flags/*.cfg`` into a config.

Each app's flags are defined once, next to its config, by two functions of the config's module:
``define_flags(fv)`` defines them on an ``absl.flags.FlagValues`` and ``config_from_flags(fv)``
builds the config from the parsed values. The app's ``__main__.py`` calls the same two functions
on the global flags, so a flag file means the same to the command line and to a library::

    recipe = config_from_flagfile("train", "flags/retrain.cfg")          # a TrainConfig
    scoring = config_from_flagfile("search", path, ["--workdir=/tmp/s"])  # a SearchConfig
"""

from __future__ import annotations

import importlib
import typing

from spos_tf.runs import config_flags

# app -> the module holding its define_flags(fv) and config_from_flags(fv).
APPS = {
    "train": "spos_tf.train.config",
    "search": "spos_tf.search.config",
}


def config_from_flagfile(app: str, path, overrides: typing.Sequence[str] = ()):
    """The config (not yet validated) of ``python -m spos_tf.<app> --flagfile=<path>
    <overrides>``: ``app``'s flags parsed from flag file ``path`` (nested ``--flagfile=`` paths are
    relative to the current folder, as on the command line), then ``overrides`` (``--name=value``
    arguments, which win) on a fresh ``FlagValues``; the global flags are untouched.

    Returns:
      a ``TrainConfig`` for ``"train"``, a ``SearchConfig`` for ``"search"``.

    Raises:
      KeyError: ``app`` is not one of :data:`APPS`.
      ValueError: the file is missing or holds an unknown or malformed flag (the message names
        the file).
    """
    if app not in APPS:
        raise KeyError(f"no flag file parser for app {app!r}; one of {sorted(APPS)}")
    module = importlib.import_module(APPS[app])
    fv = config_flags.parse_flagfile(module.define_flags, str(path), overrides)
    return module.config_from_flags(fv)
