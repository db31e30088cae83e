r"""Side-by-side table of a mixed-precision search: searched network vs uniform kWkA baseline.

    python -m spos_tf.report_quant runs/quant_quickstart

Prints the Markdown table of :func:`spos_tf.report_quant.report.rows` of ``<workdir>`` (the folders
``tools/quant_quickstart.sh`` writes; see :mod:`spos_tf.report_quant.report`). Exit status: 0 done,
2 no argument or no retrained network under it.
"""

from __future__ import annotations

import sys

from spos_tf.report_quant.report import format_table, rows


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m spos_tf.report_quant <workdir>", file=sys.stderr)
        return 2
    table = rows(argv[0])
    if not table:
        print(f"error: no retrained networks under {argv[0]!r}", file=sys.stderr)
        return 2
    print(format_table(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
