"""Search spaces as data: parsing, validation, sampling, registry, hyperparameter bridge."""

import json

import numpy as np
import pytest

from spos_tf import spaces
from spos_tf.spaces.space import arch_from_any

PAPER = "2,1,0,1,2,0,2,0,2,0,2,3,0,0,0,0,3,2,3,3"


def test_table2_layout():
    s = spaces.get("shufflenet_oneshot")
    assert (s.image_size, s.num_classes, s.num_blocks) == (224, 1000, 20)
    assert [(st.repeats, st.channels, st.stride) for st in s.stages] == [
        (4, 64, 2),
        (4, 160, 2),
        (8, 320, 2),
        (4, 640, 2),
    ]
    assert (s.stem_channels, s.stem_stride, s.head_channels) == (16, 2, 1024)
    assert s.ops == ("shuffle3x3", "shuffle5x5", "shuffle7x7", "xception")
    assert s.size == 4**20
    # feature map sides 112 -> 56 -> 28 -> 14 -> 7 as in Table 2
    sides = sorted({hw for (_, _, _, hw) in s.block_layout()}, reverse=True)
    assert sides == [112, 56, 28, 14, 7] and s.final_hw == 7


def test_text_and_json_round_trip():
    s = spaces.get("shufflenet_oneshot")
    a = s.parse(PAPER)
    assert str(a) == PAPER
    assert s.parse(a.to_json(s)) == a
    assert json.loads(a.to_json(s))["genes"]["op"][0] == 2
    assert hash(a) == hash(s.parse(PAPER)) and len({a, s.parse(PAPER)}) == 1
    bc = spaces.get("shufflenet_oneshot_blocks_channels")
    text = "0,0,3,1,1,1,0,0,2,0,2,1,1,0,2,0,2,1,3,2|6,5,3,5,2,6,3,4,2,5,7,5,4,6,7,4,4,5,4,3"
    b = bc.parse(text)
    assert str(b) == text and bc.parse(b.to_json(bc)) == b
    assert bc.decode(b)[0] == {"op": "shuffle3x3", "channel": 1.4, "wbits": 32, "abits": 32}


def test_arch_from_file(tmp_path):
    s = spaces.get("shufflenet_oneshot")
    path = tmp_path / "best.json"
    path.write_text(s.parse(PAPER).to_json(s, accuracy=0.5))
    assert str(arch_from_any(s, str(path))) == PAPER
    with pytest.raises(FileNotFoundError):
        arch_from_any(s, str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    "text,needle",
    [
        ("0,1,2", "20 choice blocks"),
        (
            PAPER.replace("3,3", "3,4", 1).rsplit(",", 1)[0] + ",4",
            "block 19: op choice 4 is out of range; allowed 0..3",
        ),
        ("a,b", "comma-separated integers"),
        (PAPER + "|" + PAPER, "1 gene kind"),
        ("", "empty"),
    ],
)
def test_bad_architectures(text, needle):
    s = spaces.get("shufflenet_oneshot")
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        s.parse(text)


def test_sampling_is_uniform_and_seeded():
    s = spaces.get("shufflenet_oneshot")
    a = [s.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    draws = np.array([s.sample(np.random.default_rng(i)).genes[0] for i in range(2000)])
    counts = np.bincount(draws.ravel(), minlength=4) / draws.size
    assert np.allclose(counts, 0.25, atol=0.01)


def test_hyperparameter_bridge():
    s = spaces.get("shufflenet_oneshot_blocks_channels", repeats=(1, 1, 1, 1))
    a = s.sample(np.random.default_rng(0))
    values = s.to_values(a)
    assert len(values) == 8 and s.from_values(values) == a
    hps = s.hyperparameters()
    assert [hp.name for hp in hps.space] == s.hp_names()
    assert hps.space[0].values == [0, 1, 2, 3] and hps.space[4].values == list(range(8))
