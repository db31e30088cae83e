r"""Side-by-side table of a mixed-precision search: searched network vs uniform kWkA baseline.

The library of ``python -m spos_tf.report_quant <workdir>`` (:mod:`spos_tf.report_quant.__main__`).
Reads the folders that ``tools/quant_quickstart.sh`` writes into ``<workdir>``:

- ``search/best.json``: the searched architecture, its BitOps and the budget it was searched under;
- ``retrain_searched/``: ``spos_tf.train --arch=<workdir>/search/best.json`` (QAT from scratch);
- ``retrain_<k>w<k>a/``: ``spos_tf.train --uniform_bits=k`` (the uniform QAT baseline), one or more.

Each row gives the architecture, its MACs and BitOps (``spos_tf.costs``, first conv and last FC at 8
bits), BitOps relative to the budget, and the final accuracy of the retrained network (the last
``metrics.jsonl`` record's ``val_accuracy``); the searched row also gives its accuracy with supernet
weights. Reads files only (no TensorFlow).
"""

from __future__ import annotations

import glob
import json
import os

from spos_tf import costs
from spos_tf.runs import run_dir

SEARCH_DIR, SEARCHED_DIR, UNIFORM_GLOB = "search", "retrain_searched", "retrain_*w*a"


def _final_accuracy(workdir: str):
    """``val_accuracy`` of the last evaluation record of the run in ``workdir`` (None if none)."""
    evaluated = [r for r in run_dir.MetricsLog(workdir).read() if "val_accuracy" in r]
    return evaluated[-1]["val_accuracy"] if evaluated else None


def _row(name: str, workdir: str, budget) -> dict | None:
    if not os.path.exists(os.path.join(workdir, run_dir.CONFIG_FILE)):
        return None
    config = run_dir.load_run_config(workdir)
    space = run_dir.space_from_config(config)
    arch = space.parse(config["arch"])
    bitops = costs.bitops(space, arch)
    return {
        "network": name,
        "arch": str(arch),
        "macs": costs.macs(space, arch),
        "bitops": bitops,
        "budget": budget,
        "within_budget": None if budget is None else bitops <= budget,
        "accuracy": _final_accuracy(workdir),
    }


def rows(workdir: str) -> list:
    """One dict per retrained network: ``network, arch, macs, bitops, budget, within_budget,
    accuracy`` (+ ``supernet_accuracy`` for the searched one); missing runs are skipped."""
    best_path = os.path.join(workdir, SEARCH_DIR, "best.json")
    best = None
    if os.path.exists(best_path):
        with open(best_path) as f:
            best = json.load(f)
    budget = (best or {}).get("constraints", {}).get("bitops")
    out = []
    searched = _row("searched (mixed precision)", os.path.join(workdir, SEARCHED_DIR), budget)
    if searched is not None:
        searched["supernet_accuracy"] = None if best is None else best["accuracy"]
        out.append(searched)
    for folder in sorted(glob.glob(os.path.join(workdir, UNIFORM_GLOB))):
        k = os.path.basename(folder)[len("retrain_") :].upper()
        row = _row(f"uniform {k}", folder, budget)
        if row is not None:
            out.append(row)
    return out


def format_table(table: list) -> str:
    """A Markdown table of :func:`rows` (``|`` in architecture texts escaped as ``\\|``)."""

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}%"

    lines = [
        "| network | arch | MMACs | BitOps (M) | BitOps / budget | top-1 (supernet "
        "weights) | top-1 (QAT retrained) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        ratio = "-" if not r["budget"] else f"{r['bitops'] / r['budget']:.3f}"
        arch = r["arch"].replace("|", "\\|")  # "|" separates the gene rows; it would end the cell
        lines.append(
            f"| {r['network']} | `{arch}` | {r['macs'] / 1e6:.2f} | "
            f"{r['bitops'] / 1e6:.1f} | {ratio} | {pct(r.get('supernet_accuracy'))} | "
            f"{pct(r['accuracy'])} |"
        )
    return "\n".join(lines)
