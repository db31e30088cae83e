"""Search spaces as data: the space type, the registry of named spaces, the op catalogue, NAS-Bench-201's cell encoding and the space-override settings.

``spos_tf.spaces.get(name)``, ``spos_tf.spaces.names()`` and the other names of
:mod:`spos_tf.spaces.registry` resolve lazily here (the registry imports the space
modules, which import this package)."""

import importlib
import importlib.util


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule wins
        return importlib.import_module(f"{__name__}.{name}")
    return getattr(importlib.import_module("spos_tf.spaces.registry"), name)
