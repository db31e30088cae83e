"""spos_tf.spaces: the registry, overrides, strides for small images, flags of the overrides."""

import math

import pytest
from absl import flags

from spos_tf.spaces import overrides as space_overrides
from spos_tf import spaces


def test_registry_and_overrides():
    assert {
        "shufflenet_oneshot",
        "shufflenet_oneshot_channels",
        "shufflenet_oneshot_blocks_channels",
        "resnet18_mixed_precision",
        "resnet34_mixed_precision",
    } <= set(spaces.names())
    with pytest.raises(ValueError, match="unknown search space"):
        spaces.get("nope")
    with pytest.raises(ValueError, match="unknown op 'conv9x9'"):
        spaces.get("shufflenet_oneshot", ops=("conv9x9",))
    for size in (8, 16, 32, 64):
        s = spaces.get("shufflenet_oneshot", image_size=size, num_classes=10)
        assert 4 <= s.final_hw <= 7, (size, s.final_hw)
    s = spaces.get("shufflenet_oneshot", image_size=32, strides=(1, 1, 1, 2, 2), width=0.5)
    assert s.stem_stride == 1 and [st.stride for st in s.stages] == [1, 1, 2, 2]
    assert [st.channels for st in s.stages] == [32, 80, 160, 320]
    with pytest.raises(ValueError, match="strides"):
        spaces.get("shufflenet_oneshot", strides=(2, 2))


@pytest.mark.parametrize("size", [4, 8, 12, 16, 32, 64, 100, 128, 224])
def test_auto_strides_keep_the_last_feature_map_at_least_4x4(size):
    strides = spaces.auto_strides(size)
    assert len(strides) == 5 and set(strides) <= {1, 2}
    assert strides == tuple(sorted(strides))  # the stride-2 positions are the last ones
    final = size
    for s in strides:
        final = math.ceil(final / s)
    assert final >= 4 and (final < 8 or strides == (2, 2, 2, 2, 2))


def test_table2_channels_and_width_scaling():
    s = spaces.get("shufflenet_oneshot")
    assert [st.channels for st in s.stages] == [64, 160, 320, 640]
    assert [st.repeats for st in s.stages] == [4, 4, 8, 4] and s.num_blocks == 20
    half = spaces.get("shufflenet_oneshot", width=0.5)
    assert [st.channels for st in half.stages] == [32, 80, 160, 320]


def test_a_bad_override_names_the_space():
    with pytest.raises(ValueError, match="bad override for space 'fbnet'"):
        spaces.get("fbnet", no_such_setting=3)


def test_override_flags_parse_into_space_overrides():
    fv = flags.FlagValues()
    space_overrides.define(fv)
    fv(
        [
            "app",
            "--image_size=32",
            "--strides=1,1,2,2,2",
            "--channel_scales=0.5,1.0",
            "--weight_bits=2,4",
            "--padding=reference",
            "--ops=shuffle3x3,xception",
        ]
    )
    overrides = space_overrides.from_flags(fv)
    assert overrides == {
        "image_size": 32,
        "strides": (1, 1, 2, 2, 2),
        "channel_scales": (0.5, 1.0),
        "weight_bits": (2, 4),
        "padding": "reference",
        "ops": ("shuffle3x3", "xception"),
    }
    overrides.pop("ops")
    s = spaces.get("resnet18_mixed_precision", num_classes=10, **overrides)
    assert s.image_size == 32 and s.padding == "reference"
    assert s.weight_bits == (2, 4) and s.channel_scales == (0.5, 1.0)
