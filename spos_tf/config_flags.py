"""absl flags derived from a typed config dataclass: each setting is written once, in the config.

A field's flag has the field's name, default and type; its help text (and, for a string with a
fixed set of values, the choices) come from the field's metadata::

    @dataclasses.dataclass(frozen=True)
    class RankConfig:
        num_archs: int = field(20, "Architectures to rank.")
        select: str = field("stratified", "How to pick them.", choices=("stratified", "file"))

    define_flags(RankConfig)                    # --num_archs=20 --select=stratified
    config = from_flags(RankConfig)             # RankConfig(num_archs=..., select=...)

Supported field types (as annotations, string or real): ``str``, ``int``, ``float``, ``bool``,
``Optional`` of these, and ``tuple`` (a comma-separated list of strings, see ``DEFINE_list``).
"""
from __future__ import annotations

import dataclasses
import typing

from absl import flags

_DEFINE = {"str": flags.DEFINE_string, "int": flags.DEFINE_integer,
           "float": flags.DEFINE_float, "bool": flags.DEFINE_bool, "tuple": flags.DEFINE_list}


def field(default, help: str, *, choices: typing.Sequence[str] | None = None, **kwargs):
    """A dataclass field with the metadata its flag needs (``help``, optional ``choices``)."""
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use an immutable default (tuple) for config fields")
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def _base_type(annotation) -> str:
    """``"int"`` for ``int``, ``"Optional[int]"``, ``"int | None"`` (annotations as strings too)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__",
                                                                  str(annotation))
    text = text.replace("typing.", "").replace(" ", "")
    if text.startswith("Optional["):
        text = text[len("Optional["):-1]
    return text.split("|")[0].split("[")[0]


def define_flags(cls, fv=None, skip: typing.Iterable[str] = ()) -> None:
    """Defines one flag per field of dataclass ``cls`` on ``fv`` (default ``absl.flags.FLAGS``).

    Raises:
      TypeError: a field without help metadata or of an unsupported type.
    """
    fv = flags.FLAGS if fv is None else fv
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if "help" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} has no help text: declare it with "
                            f"spos_tf.config_flags.field(default, help)")
        kind = _base_type(f.type)
        if kind not in _DEFINE:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported flag type {f.type!r}")
        default = f.default if f.default is not dataclasses.MISSING else None
        if "choices" in f.metadata:
            flags.DEFINE_enum(f.name, default, list(f.metadata["choices"]), f.metadata["help"],
                              flag_values=fv)
        elif kind == "tuple":
            _DEFINE[kind](f.name, None if default is None else list(default), f.metadata["help"],
                          flag_values=fv)
        else:
            _DEFINE[kind](f.name, default, f.metadata["help"], flag_values=fv)


def from_flags(cls, fv=None, **overrides):
    """An instance of ``cls`` from the parsed flags of its fields (``overrides`` win)."""
    fv = flags.FLAGS if fv is None else fv
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in overrides or f.name not in fv:
            continue
        value = fv[f.name].value
        if _base_type(f.type) == "tuple" and value is not None:
            value = tuple(value)
        values[f.name] = value
    values.update(overrides)
    return cls(**values)


def parse_flagfile(define, path: str, extra: typing.Sequence[str] = ()) -> flags.FlagValues:
    """Parses flag file ``path`` (plus ``extra`` arguments) with the flags that ``define(fv)``
    defines, on a fresh ``FlagValues``; the global flags are untouched.

    Raises:
      ValueError: the file is missing or holds an unknown or malformed flag (the message names
        the file).
    """
    import os

    if not os.path.isfile(path):
        raise ValueError(f"flag file {path!r} does not exist")
    fv = flags.FlagValues()
    define(fv)
    try:
        fv(["spos_tf", f"--flagfile={path}", *extra], known_only=False)
    except (flags.Error, flags.UnrecognizedFlagError) as e:
        raise ValueError(f"flag file {path!r}: {e}") from None
    return fv
