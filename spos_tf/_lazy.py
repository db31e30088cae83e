"""Lazy re-exports for a package's ``__init__`` (PEP 562 module ``__getattr__``).

A package lists the names it re-exports as ``{attribute: (module, name)}`` (``name`` None for
the module itself); a name's module is imported on its first access, so importing the package
imports nothing else (``spos_tf`` and ``spos_tf.search`` stay TensorFlow-free until a name that
needs TensorFlow is used). Cost: one import per module, on first use; the value is then cached in
the package's namespace.
"""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, table: dict):
    """``(__getattr__, __dir__)`` for the package named ``package`` re-exporting ``table``."""

    def __getattr__(name):
        if name in table:
            module_name, attr = table[name]
            module = importlib.import_module(module_name)
            value = module if attr is None else getattr(module, attr)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
