"""What every absl app of spos_tf does first (``train``, ``search``, ``export``, ``pipeline``)."""

from absl import app, flags, logging


def start(argv) -> None:
    """Refuses positional arguments (every option is a ``--flag``) and, unless ``--verbosity`` was
    given, logs at WARNING: TFDS logs every data set it opens at INFO."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
