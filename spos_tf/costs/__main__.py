"""``python -m spos_tf.costs``: MACs, params, BitOps (and latency, with a table) of an architecture,
printed as one JSON line. The counting is the library's, :mod:`spos_tf.costs`."""

import json

from absl import app, flags

from spos_tf import spaces
from spos_tf.costs import (
    bitops,
    check_convention,
    paper_giga,
    report,
    supernet_params,
    table,
    uniform_bitops,
    uniform_macs,
)
from spos_tf.spaces import overrides as space_overrides
from spos_tf.spaces.space import arch_from_any


def main(argv):  # pragma: no cover - exercised through the command line in tests
    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    space = spaces.get(FLAGS.space, **space_overrides.from_flags(FLAGS))
    convention = check_convention(FLAGS.bitops_convention)
    if FLAGS.uniform_bits is not None:
        if not space.quantized:
            raise SystemExit(f"--uniform_bits needs a quantized space; {space.name!r} is float")
        count = uniform_bitops(space, FLAGS.uniform_bits, convention=convention)
        out = {
            "space": space.name,
            "uniform_bits": FLAGS.uniform_bits,
            "macs": uniform_macs(space),
            "bitops": count,
            "fixed_bitops": table(space).fixed_bitops() if convention == "ours" else 0,
            "bitops_convention": convention,
            "supernet_params": supernet_params(space),
        }
        if convention == "paper":
            out["bitops_paper_g"] = round(paper_giga(count), 2)
    else:
        arch = arch_from_any(space, FLAGS.arch) if FLAGS.arch else None
        out = report(space, arch, FLAGS.latency_table)
        if arch is not None and space.quantized and convention == "paper":
            out.update(
                bitops=bitops(space, arch, convention="paper"),
                bitops_convention="paper",
                bitops_paper_g=round(paper_giga(bitops(space, arch, convention="paper")), 2),
            )
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":  # pragma: no cover
    flags.DEFINE_string("space", "shufflenet_oneshot", "search space name")
    flags.DEFINE_string("arch", None, "architecture text form or path to best.json")
    flags.DEFINE_integer("uniform_bits", None, "print MACs/BitOps of the uniform KwKa network")
    flags.DEFINE_string(
        "latency_table", None, "latency lookup table (spos_tf.latency build): also print latency_ms"
    )
    flags.DEFINE_string(
        "bitops_convention",
        "ours",
        "BitOps counting: ours (every layer, 8-bit "
        "first conv and FC included) or paper (choice blocks only; Table 6's "
        "figures are these counts / 2^30)",
    )
    space_overrides.define(flags.FLAGS)

    def _run(argv):
        try:
            main(argv)
        except (ValueError, FileNotFoundError) as e:
            raise SystemExit(f"error: {e}") from None

    app.run(_run)
