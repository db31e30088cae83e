"""spos_tf.search.priors: the zero-cost caches of a search's workdir: each candidate computed once,
kept across instances (a resumed search), and a foreign or corrupt file refused, not overwritten;
NASWOT's images read once, on the first computed score."""

import json

import pytest

from spos_tf.rank import zero_cost
from spos_tf.search import priors

from _supernet_workdir import tiny_space


def test_each_candidate_is_computed_once_and_read_back(tmp_path, monkeypatch):
    space = tiny_space()
    calls = []

    def fake(space_, arch, seed=0):
        calls.append((str(arch), seed))
        return 10.0 ** len(calls)

    monkeypatch.setattr(zero_cost, "synflow_of", fake)
    cache = priors.PriorCache(str(tmp_path), space, "synflow")
    a, b = space.parse("0,1,2,3"), space.parse("3,3,3,3")
    assert (cache(a), cache(b), cache(a)) == (10.0, 100.0, 10.0)
    assert calls == [("0,1,2,3", priors.SYNFLOW_SEED), ("3,3,3,3", priors.SYNFLOW_SEED)]
    stored = json.loads((tmp_path / priors.SYNFLOW_FILE).read_text())
    assert stored == {"seed": 0, "scores": {"0,1,2,3": 10.0, "3,3,3,3": 100.0}}
    again = priors.PriorCache(str(tmp_path), space, "synflow")  # a resumed search
    assert again(b) == 100.0 and len(calls) == 2


def test_a_real_score_grows_with_the_network(tmp_path):
    # SynFlow sums |w * dR/dw| over kernels: more 3x3 convolutions on the path, a larger score
    space = tiny_space()
    cache = priors.PriorCache(str(tmp_path), space, "synflow")
    small, large = cache(space.parse("0,0,0,0")), cache(space.parse("3,3,3,3"))
    assert 0 < small < large


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not a SynFlow cache"),
        (json.dumps({"scores": {}}), "not a SynFlow cache"),
        (json.dumps({"seed": 3, "scores": {}}), "at seed 3"),
    ],
)
def test_a_foreign_file_is_refused_and_kept(tmp_path, text, match):
    path = tmp_path / priors.SYNFLOW_FILE
    path.write_text(text)
    with pytest.raises(ValueError, match=match + ".*delete it"):
        priors.PriorCache(str(tmp_path), tiny_space(), "synflow")
    assert path.read_text() == text


def test_naswot_reads_its_images_once_and_only_when_a_score_is_computed(tmp_path, monkeypatch):
    space = tiny_space()
    loads, seen = [], []

    def images():
        loads.append(1)
        return "the batch"

    def fake(space_, arch, batch, seed=0):
        seen.append((str(arch), batch, seed))
        return float(len(seen))

    monkeypatch.setattr(zero_cost, "naswot_of", fake)
    (tmp_path / "naswot.json").write_text(json.dumps({"seed": 0, "scores": {"0,1,2,3": 7.0}}))
    cache = priors.PriorCache(str(tmp_path), space, "naswot", images)
    assert cache(space.parse("0,1,2,3")) == 7.0 and loads == []  # cached: no images read
    assert cache(space.parse("3,3,3,3")) == 1.0 and cache(space.parse("1,1,1,1")) == 2.0
    assert loads == [1]  # read once
    assert seen == [("3,3,3,3", "the batch", 0), ("1,1,1,1", "the batch", 0)]
    stored = json.loads((tmp_path / "naswot.json").read_text())["scores"]
    assert stored == {"0,1,2,3": 7.0, "3,3,3,3": 1.0, "1,1,1,1": 2.0}
    with pytest.raises(ValueError, match="unknown zero-cost proxy 'grasp'"):
        priors.PriorCache(str(tmp_path), space, "grasp")
