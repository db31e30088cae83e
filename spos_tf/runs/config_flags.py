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
``Optional`` of these, and ``tuple`` (a comma-separated list, see ``DEFINE_list``: of strings, or
of ints or floats for ``tuple[int, ...]`` / ``tuple[float, ...]``, converted by :func:`from_flags`).

The same metadata validates a config (:func:`check_fields`: types, ``low``/``high`` bounds and
``choices``, one error message format for every app) and names the settings that may change when a
run directory is resumed (``neutral=True``; :func:`neutral_fields`)::

    steps: int = field(1000, "Updates.", low=1)
    momentum: float = field(0.9, "SGD momentum.", low=0.0, high=1.0)
    progress: bool = field(True, "Progress bar.", neutral=True)

A field may carry another flag name than its own (``flag="dataset"`` for ``DataConfig.name``) or no
flag at all (``flag=False``: a setting filled in by code, such as a nested config or a value
resolved from the data; such a field may use ``default_factory``)::

    name: str = field("spos_digits", "TFDS name.", flag="dataset")
    data: DataConfig = field(help="The input data.", default_factory=DataConfig, flag=False)

Why not ``ml_collections.config_flags`` (issue 21 asked to compare): it defines one ``--config``
flag pointing at a Python file and overrides as ``--config.steps=...``. Adopting it would rename
every flag users and the flag files know (``--steps`` -> ``--config.steps``), add a dependency not
in requirements.txt, and still leave validation (bounds, choices), resume-neutral settings and
``flags.txt`` serialisation to be written here; this module is the simpler of the two for flat,
typed dataclass configs whose flag names must stay as they are.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing

from absl import flags

_DEFINE = {
    "str": flags.DEFINE_string,
    "int": flags.DEFINE_integer,
    "float": flags.DEFINE_float,
    "bool": flags.DEFINE_bool,
    "tuple": flags.DEFINE_list,
}


def field(
    default=dataclasses.MISSING,
    help: str = "",
    *,
    choices: typing.Sequence[str] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    neutral: bool = False,
    flag: bool | str = True,
    **kwargs,
):
    """A dataclass field with the metadata its flag and its checks need.

    Args:
      default: the default (immutable); a field without a flag may pass ``default_factory``
        (in ``kwargs``) instead.
      help: the flag's help text (required for a field with a flag).
      choices: the allowed values of a string setting (an enum flag).
      low, high: bounds of a number (``None``: unbounded); ``low_open``/``high_open`` exclude
        the bound itself. Checked by :func:`check_fields` (``None`` values of ``Optional``
        fields are not checked).
      neutral: the setting does not change a run's result (progress display, checkpoint period,
        paths of the data): a run directory may be resumed with another value.
      flag: ``True``: a flag of the field's name; a string: a flag of that name; ``False``: no
        flag (:func:`define_flags` and :func:`from_flags` skip the field).
    """
    metadata = {"help": help, "neutral": bool(neutral), "flag": flag}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    for key, value in (("low", low), ("high", high)):
        if value is not None:
            metadata[key] = value
    metadata["low_open"], metadata["high_open"] = bool(low_open), bool(high_open)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use an immutable default (tuple) for config fields")
    if flag is not False and (not help or "default_factory" in kwargs):
        raise TypeError("a field with a flag needs a help text and a plain default")
    if default is not dataclasses.MISSING:
        kwargs["default"] = default
    return dataclasses.field(metadata=metadata, **kwargs)


def flag_name(f: dataclasses.Field) -> str | None:
    """The flag of dataclass field ``f`` (see :func:`field`'s ``flag``), or None without one."""
    flag = f.metadata.get("flag", True)
    if flag is False:
        return None
    return f.name if flag is True else flag


def flag_names(cls) -> tuple:
    """The flags of dataclass ``cls``'s fields, in field order."""
    return tuple(name for name in map(flag_name, dataclasses.fields(cls)) if name is not None)


def _item_type(annotation):
    """``int`` for ``tuple[int, ...]`` (``Optional`` of it too), ``float`` likewise, else ``str``."""
    text = str(annotation).replace("typing.", "").replace(" ", "")
    for name, kind in (("int", int), ("float", float)):
        if f"tuple[{name}," in text:
            return kind
    return str


def _base_type(annotation) -> str:
    """``"int"`` for ``int``, ``"Optional[int]"``, ``"int | None"`` (annotations as strings too)."""
    if isinstance(annotation, str):
        text = annotation
    elif isinstance(annotation, type):
        text = annotation.__name__
    else:  # typing.Optional[int], int | None
        text = str(annotation)
    text = text.replace("typing.", "").replace(" ", "")
    if text.startswith("Optional["):
        text = text[len("Optional[") : -1]
    return text.split("|")[0].split("[")[0]


def define_flags(cls, fv=None, skip: typing.Iterable[str] = ()) -> None:
    """Defines one flag per field of dataclass ``cls`` on ``fv`` (default ``absl.flags.FLAGS``).

    Raises:
      TypeError: a field without help metadata or of an unsupported type.
    """
    fv = flags.FLAGS if fv is None else fv
    for f in dataclasses.fields(cls):
        name = flag_name(f)
        if f.name in skip or name is None:
            continue
        if not f.metadata.get("help"):
            raise TypeError(
                f"{cls.__name__}.{f.name} has no help text: declare it with "
                f"spos_tf.runs.config_flags.field(default, help)"
            )
        kind = _base_type(f.type)
        if kind not in _DEFINE:
            raise TypeError(f"{cls.__name__}.{f.name}: unsupported flag type {f.type!r}")
        default = f.default if f.default is not dataclasses.MISSING else None
        if "choices" in f.metadata:
            flags.DEFINE_enum(
                name, default, list(f.metadata["choices"]), f.metadata["help"], flag_values=fv
            )
        elif kind == "tuple":
            _DEFINE[kind](
                name, None if default is None else list(default), f.metadata["help"], flag_values=fv
            )
        else:
            _DEFINE[kind](name, default, f.metadata["help"], flag_values=fv)


def define_retired(name: str, help_text: str, fv) -> None:
    """Defines ``--<name>`` (any value, as a string) on ``fv`` only so that an app can refuse it
    with a message naming its replacement (absl's own "unknown flag" hint may name the wrong
    one); ``fv[name].present`` tells whether it was given."""
    flags.DEFINE_string(name, None, help_text, flag_values=fv)


def from_flags(cls, fv=None, **overrides):
    """An instance of ``cls`` from the parsed flags of its fields (``overrides`` win)."""
    fv = flags.FLAGS if fv is None else fv
    values = {}
    for f in dataclasses.fields(cls):
        name = flag_name(f)
        if f.name in overrides or name is None or name not in fv:
            continue
        value = fv[name].value
        if _base_type(f.type) == "tuple" and value is not None:
            value = tuple(map(_item_type(f.type), value))
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


def neutral_fields(cls, prefix: str = "") -> tuple:
    """Names of the fields of ``cls`` declared ``neutral=True`` (with ``prefix``, e.g. ``"data."``,
    for a nested config), the ``neutral`` argument of :func:`spos_tf.runs.run_dir.check_workdir`."""
    return tuple(prefix + f.name for f in dataclasses.fields(cls) if f.metadata.get("neutral"))


def _interval(meta) -> str:
    low, high = meta.get("low", -math.inf), meta.get("high", math.inf)
    return (
        ("(" if meta.get("low_open") or low == -math.inf else "[")
        + f"{low:g}, {high:g}"
        + (")" if meta.get("high_open") or high == math.inf else "]")
    )


def check_value(name: str, value, kind: str, meta: typing.Mapping) -> None:
    """Checks one setting against its type (``"int"``, ``"float"``, ...) and ``meta``'s bounds
    and choices.

    Raises:
      ValueError: naming the flag, the allowed values and the value given.
    """
    _check(f"--{name}", value, kind, meta)


def _check(label: str, value, kind: str, meta: typing.Mapping) -> None:
    choices = meta.get("choices")
    if choices is not None:
        if value not in choices:
            raise ValueError(
                f"{label} must be one of {', '.join(map(str, choices))}; got {value!r}"
            )
        return
    if kind in ("int", "float"):
        is_int = isinstance(value, int) or type(value).__name__.startswith(("int", "uint"))
        is_number = is_int or isinstance(value, float) or type(value).__name__.startswith("float")
        ok = not isinstance(value, bool) and (is_int if kind == "int" else is_number)
        ok = ok and math.isfinite(float(value))
        if ok:
            low, high = meta.get("low"), meta.get("high")
            ok = (low is None or (value > low if meta.get("low_open") else value >= low)) and (
                high is None or (value < high if meta.get("high_open") else value <= high)
            )
        if not ok:
            what = "an integer" if kind == "int" else "a number"
            bounds = "" if "low" not in meta and "high" not in meta else f" in {_interval(meta)}"
            if kind == "int" and "low" in meta and "high" not in meta and not meta.get("low_open"):
                bounds = f" >= {meta['low']:g}"
            raise ValueError(f"{label} must be {what}{bounds}, got {value!r}")
    elif kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{label} must be true or false, got {value!r}")
    elif kind == "str" and not isinstance(value, (str, os.PathLike)):  # paths are strings too
        raise ValueError(f"{label} must be a string, got {value!r}")


def check_fields(config) -> None:
    """Checks every field of dataclass instance ``config`` against its declared type and
    metadata (bounds, choices); ``None`` passes for ``Optional`` fields. Cross-field rules stay
    in the config's own ``validate``.

    Raises:
      ValueError: the first bad setting, naming its flag (``Class.field`` for a field without a
        flag) and the allowed values.
    """
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        annotation = f.type if isinstance(f.type, str) else str(f.type)
        if value is None and ("Optional" in annotation or "None" in annotation):
            continue
        kind = _base_type(f.type)
        if kind in _DEFINE:
            name = flag_name(f)
            label = f"--{name}" if name else f"{type(config).__name__}.{f.name}"
            _check(label, value, kind, f.metadata)
