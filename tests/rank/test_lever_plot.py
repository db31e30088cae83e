"""benchmarks/lever_plot.py on a hand-written ablation table: the plotted numbers are the table's
rows, a lever is marked resolved exactly when its interval excludes 0, a prior alone counts no
supernet seeds, the figure parses as a PNG, and bad levers are refused with errors that name the
fix."""

import json

import pytest
from conftest import import_benchmark


@pytest.fixture(scope="module")
def lever_plot():
    return import_benchmark("lever_plot")


def delta(value, low, high):
    return {"value": value, "ci_low": low, "ci_high": high}


@pytest.fixture
def table(tmp_path):
    rows = [
        ("base", 1, 0.60, delta(0.0, 0.0, 0.0)),
        ("helps", 2, 0.65, delta(0.05, 0.02, 0.09)),
        ("unclear", 1, 0.61, delta(0.01, -0.03, 0.05)),
        ("hurts", 2, 0.50, delta(-0.10, -0.14, -0.06)),
        ("MACs alone", 1, 0.55, delta(-0.05, -0.12, 0.01)),
    ]
    path = tmp_path / "ablation.json"
    path.write_text(
        json.dumps(
            {
                "num_archs": 200,
                "rows": [
                    {
                        "label": label,
                        "seeds": seeds,
                        "score": "macs" if label == "MACs alone" else "supernet_accuracy",
                        "kendall_tau": {"value": tau},
                        "delta_tau_vs_baseline": d,
                    }
                    for label, seeds, tau, d in rows
                ],
            }
        )
    )
    return path


def test_points_are_the_tables_rows(tmp_path, table, lever_plot):
    out = tmp_path / "fig" / "levers.png"
    levers = lever_plot.main(
        [
            f"--lever=A={table}#helps",
            f"--lever=B={table}#unclear",
            f"--lever=C={table}#hurts",
            f"--lever=D={table}#MACs alone",
            f"--out={out}",
        ]
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((tmp_path / "fig" / "levers.json").read_text())["levers"]
    assert written == levers
    got = [
        (lv["label"], lv["seeds"], lv["delta_tau"], lv["ci_low"], lv["ci_high"]) for lv in levers
    ]
    assert got == [
        ("A", 2, 0.05, 0.02, 0.09),
        ("B", 1, 0.01, -0.03, 0.05),
        ("C", 2, -0.10, -0.14, -0.06),
        ("D", 0, -0.05, -0.12, 0.01),  # a prior alone: no supernet seeds
    ]
    assert [lv["resolved"] for lv in levers] == [True, False, True, False]
    assert {lv["baseline"] for lv in levers} == {"base"}
    assert levers[0]["kendall_tau"] == 0.65 and levers[0]["num_archs"] == 200


def test_arguments_from_a_file(tmp_path, table, lever_plot):
    args = tmp_path / "levers.args"
    out = tmp_path / "levers.png"
    # one argument per line; labels with spaces and commas need no quoting
    args.write_text(f"--out={out}\n--lever=helps, a lot={table}#helps\n")
    (lever,) = lever_plot.main([f"@{args}"])
    assert (lever["label"], lever["delta_tau"]) == ("helps, a lot", 0.05)
    assert out.exists()


def test_bad_levers_are_refused(tmp_path, table, lever_plot):
    out = tmp_path / "levers.png"
    with pytest.raises(SystemExit, match="its rows: .*'helps'"):
        lever_plot.main([f"--lever=A={table}#missing", f"--out={out}"])
    with pytest.raises(SystemExit, match="does not exist; write it with"):
        lever_plot.main([f"--lever=A={tmp_path / 'none.json'}#helps", f"--out={out}"])
    with pytest.raises(SystemExit, match="expected 'display label=<ablation.json>#<row label>'"):
        lever_plot.main([f"--lever=A={table}", f"--out={out}"])
    with pytest.raises(SystemExit, match="give a .png path"):
        lever_plot.main([f"--lever=A={table}#helps", f"--out={tmp_path / 'levers.pdf'}"])
    assert not out.exists()
