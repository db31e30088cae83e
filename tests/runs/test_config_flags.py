"""spos_tf.runs.config_flags: flags, checks and resume-neutral settings derived from field metadata."""

import dataclasses
from typing import Optional

import numpy as np
import pytest
from absl import flags

from spos_tf.runs import config_flags
from spos_tf.runs.config_flags import check_fields, field, neutral_fields


@dataclasses.dataclass(frozen=True)
class Config:
    steps: int = field(10, "Updates.", low=1)
    lr: float = field(0.1, "Peak rate.", low=0.0, low_open=True)
    momentum: float = field(0.9, "Momentum.", low=0.0, high=1.0)
    optimizer: str = field("sgd", "Optimizer.", choices=("sgd", "adam"))
    limit: Optional[int] = field(None, "Optional limit.", low=0)
    ops: Optional[tuple] = field(None, "Op names.")
    progress: bool = field(True, "Progress bar.", neutral=True)


def test_flags_are_derived_from_the_fields_and_build_the_config():
    fv = flags.FlagValues()
    config_flags.define_flags(Config, fv)
    fv(["app", "--steps=7", "--optimizer=adam", "--limit=3", "--ops=a,b", "--noprogress"])
    assert config_flags.from_flags(Config, fv) == Config(
        steps=7, optimizer="adam", limit=3, ops=("a", "b"), progress=False
    )
    with pytest.raises(flags.IllegalFlagValueError):
        fv(["app", "--optimizer=rmsprop"])


def test_defaults_pass_the_checks():
    check_fields(Config())
    check_fields(Config(steps=np.int64(3), lr=np.float32(0.5)))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(steps=0), "--steps must be an integer >= 1, got 0"),
        (dict(steps=True), "--steps must be an integer >= 1, got True"),
        (dict(steps=2.0), "--steps must be an integer >= 1, got 2.0"),
        (dict(lr=0.0), "--lr must be a number in (0, inf), got 0.0"),
        (dict(lr=float("nan")), "--lr must be a number in (0, inf)"),
        (dict(momentum=1.5), "--momentum must be a number in [0, 1], got 1.5"),
        (dict(optimizer="rmsprop"), "--optimizer must be one of sgd, adam; got 'rmsprop'"),
        (dict(limit=-1), "--limit must be an integer >= 0, got -1"),
        (dict(progress="yes"), "--progress must be true or false"),
    ],
)
def test_a_bad_setting_is_named_with_its_allowed_values(change, message):
    with pytest.raises(ValueError) as e:
        check_fields(Config(**change))
    assert message in str(e.value)


def test_neutral_fields_are_those_declared_neutral():
    assert neutral_fields(Config) == ("progress",)
    assert neutral_fields(Config, "data.") == ("data.progress",)


def test_a_field_without_help_cannot_become_a_flag():
    @dataclasses.dataclass(frozen=True)
    class Bad:
        steps: int = 3

    with pytest.raises(TypeError, match="no help text"):
        config_flags.define_flags(Bad, flags.FlagValues())


@dataclasses.dataclass(frozen=True)
class Data:
    name: str = field("digits", "Data set name.", flag="dataset")
    root: Optional[str] = field(None, "Where the data lies.", neutral=True)
    image_size: Optional[int] = field(None, low=1, flag=False)  # filled in by code
    extra: dict = field(default_factory=dict, flag=False)


def test_a_field_may_have_another_flag_name_or_none():
    assert config_flags.flag_names(Data) == ("dataset", "root")
    fv = flags.FlagValues()
    config_flags.define_flags(Data, fv)
    flags.DEFINE_integer("image_size", 5, "Another app's flag of the same name.", flag_values=fv)
    assert set(fv) == {"dataset", "root", "image_size"}
    fv(["app", "--dataset=cifar10", "--root=/d"])
    assert config_flags.from_flags(Data, fv) == Data(name="cifar10", root="/d")  # no image_size
    with pytest.raises(ValueError, match="--dataset must be a string, got 3"):
        check_fields(Data(name=3))
    with pytest.raises(ValueError, match=r"^Data.image_size must be an integer >= 1, got 0$"):
        check_fields(Data(image_size=0))  # no flag: named by its field


def test_a_path_is_a_string_setting():
    import pathlib

    check_fields(Data(root=pathlib.Path("/tmp")))


def test_a_flag_needs_a_help_text_and_a_plain_default():
    with pytest.raises(TypeError, match="help text"):
        field(3)
    with pytest.raises(TypeError, match="plain default"):
        field(help="A list.", default_factory=list)
