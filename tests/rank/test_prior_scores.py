"""benchmarks/prior_scores.py: the proxy column it adds to stored rankings, its score cache, and
what it refuses (existing outputs, a cache of other settings)."""

import csv
import json

import numpy as np
import pytest
from conftest import import_benchmark

from spos_tf import spaces
from spos_tf.rank import zero_cost

ARCHS = ["3,3,3,3,3,3", "1,1,1,1,1,1", "2,0,4,1,3,0"]
SMALL = ["--space=nasbench201", "--repeats=1,1,1", "--width=0.25"]


@pytest.fixture(scope="module")
def tool():
    return import_benchmark("prior_scores")


def write_ranking(folder, archs):
    folder.mkdir(parents=True)
    with open(folder / "ranking.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "arch", "supernet_accuracy"])
        for i, arch in enumerate(archs):
            writer.writerow([i, arch, 0.5 + 0.1 * i])


def test_adds_the_synflow_column_to_every_ranking_once_per_arch(tmp_path, tool):
    write_ranking(tmp_path / "a", ARCHS)
    write_ranking(tmp_path / "b", ARCHS[::-1])
    out = tmp_path / "out"
    args = ["--proxy=synflow", f"--out={out}", *SMALL]
    tool.main([*args, f"--ranking={tmp_path / 'a'}", f"--ranking={tmp_path / 'b'}"])
    # SynFlow of the untrained 1-cell networks, at the seed spos_tf.rank uses for it
    space = spaces.get("nasbench201", repeats=(1, 1, 1), width=0.25)
    from spos_tf.rank.report import SYNFLOW_SEED

    expected = {a: zero_cost.synflow_of(space, space.parse(a), seed=SYNFLOW_SEED) for a in ARCHS}
    for name in ("a", "b"):
        with open(out / name / "ranking.csv") as f:
            rows = list(csv.DictReader(f))
        assert [r["arch"] for r in rows] == (ARCHS if name == "a" else ARCHS[::-1])
        for r in rows:  # the old columns kept, the new one the network's SynFlow
            assert r["supernet_accuracy"] and np.isclose(float(r["synflow"]), expected[r["arch"]])
    cache = json.loads((out / "synflow_scores.json").read_text())
    assert sorted(cache["scores"]) == sorted(ARCHS)
    # an existing output is never overwritten
    with pytest.raises(SystemExit, match="exists: remove it"):
        tool.main([*args, f"--ranking={tmp_path / 'a'}"])


def test_refuses_a_cache_of_other_settings_and_naswot_without_images(tmp_path, tool):
    write_ranking(tmp_path / "a", ARCHS[:1])
    out = tmp_path / "out"
    out.mkdir()
    (out / "synflow_scores.json").write_text(json.dumps({"settings": {"width": 2}, "scores": {}}))
    with pytest.raises(SystemExit, match="delete it to recompute"):
        tool.main(["--proxy=synflow", f"--out={out}", *SMALL, f"--ranking={tmp_path / 'a'}"])
    assert not (out / "a").exists()
    with pytest.raises(SystemExit, match="needs images"):
        tool.main(["--proxy=naswot", f"--out={out}", f"--ranking={tmp_path / 'a'}"])
