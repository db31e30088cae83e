"""benchmarks/search_budget.py on hand-made search histories and table: the picks at each budget
and their paired difference, computed here by hand."""

import json

import pytest
from conftest import import_benchmark
from _ground_truth import write_history, write_table


def test_picks_at_each_budget_by_hand(tmp_path):
    tool = import_benchmark("search_budget")
    table = write_table(tmp_path / "table.csv")  # 90.0 for 3,2,4,1,3,2; 85.0 for 1,3,1,3,1,3
    search = tmp_path / "search"
    write_history(  # table accuracies 80, 85, 90: the supernet's favourite improves with N
        search / "seed_0" / "history.csv",
        [
            ("evolution", "3,3,3,3,3,3", 0.60),
            ("evolution", "1,3,1,3,1,3", 0.65),
            ("evolution", "3,2,4,1,3,2", 0.70),
        ],
    )
    write_history(  # table accuracies 85, 70, 60, 90: the fourth is beyond the shortest seed
        search / "seed_1" / "history.csv",
        [
            ("evolution", "2,2,2,2,2,2", 0.50),
            ("evolution", "4,4,4,4,4,4", 0.80),
            ("evolution", "0,0,0,0,0,0", 0.90),
            ("evolution", "3,2,4,1,3,2", 0.95),
        ],
    )
    out, png = tmp_path / "curve.json", tmp_path / "curve.png"
    result = tool.main(
        [
            f"--search={search}",
            f"--ground_truth={table}",
            "--every=2",
            f"--out={out}",
            f"--plot={png}",
        ]
    )
    assert result["budgets"] == [2, 3]  # every 2 up to the shortest seed's 3, which is added
    evo = result["algorithms"]["evolution"]
    assert evo["seeds"] == [0, 1]
    assert evo["picks"] == [[85.0, 70.0], [90.0, 60.0]]
    assert evo["pick_mean"] == pytest.approx([77.5, 75.0])
    assert evo["best_evaluated"] == [[85.0, 85.0], [90.0, 85.0]]
    assert evo["paired_vs_first"][1]["mean"] == pytest.approx((5.0 - 10.0) / 2)
    assert evo["paired_vs_first"][1]["positive"] == 1
    assert result["table_best"]["ground_truth"] == 90.0
    assert json.loads(out.read_text())["budgets"] == [2, 3]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="positive number"):
        tool.main([f"--search={search}", f"--ground_truth={table}", "--every=0"])
