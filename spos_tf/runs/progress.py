"""A console progress bar with ETA for training loops (plain Python, no TensorFlow).

On a terminal the bar redraws one line in place (at most every ``min_interval_s``); otherwise (logs,
pipes, CI) it prints a full line every ``log_interval_s`` and at the end, so log files stay short.
The ETA is measured from the first update after construction (or after a resume), so start-up and
tracing time do not distort it.

Why not ``tf_keras.utils.Progbar`` or tqdm (both installed): a resumed run starts at step
``initial``, and Progbar's ETA divides the elapsed time by the current step, as if every step up
to it had run in this process (a run resumed at 90% shows a far too short ETA); Progbar
writes only to ``sys.stdout`` (or absl logging), while the apps and the pipeline pass their own
stream; and to a file or pipe tqdm writes carriage-return-separated redraws, where this bar writes
one full line every ``log_interval_s``.
"""

from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
    """``3725.2`` -> ``"1:02:05"``, ``65`` -> ``"1:05"``; negative or unknown -> ``"?"``."""
    if seconds is None or seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """``bar = ProgressBar(total, initial=start_step); bar.update(step, loss=0.3); bar.close()``.

    Args:
      total: the last step.
      initial: the step the run starts from (a resumed run starts at its checkpoint).
      stream: where to write (default ``sys.stdout``).
      interactive: redraw in place; default: whether ``stream`` is a terminal.
      enabled: ``False`` turns every call into a no-op (non-chief workers, tests).
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        stream=None,
        interactive: bool | None = None,
        enabled: bool = True,
        width: int = 30,
        min_interval_s: float = 0.2,
        log_interval_s: float = 30.0,
    ):
        self.total, self.initial = int(total), int(initial)
        self.stream = stream or sys.stdout
        self.interactive = (
            interactive
            if interactive is not None
            else bool(getattr(self.stream, "isatty", lambda: False)())
        )
        self.enabled, self.width = enabled, width
        self.min_interval_s = min_interval_s if self.interactive else log_interval_s
        self._start = None
        self._last_draw = 0.0
        self._last_line_len = 0

    def eta_seconds(self, step: int, now: float | None = None) -> float | None:
        """Seconds left, extrapolated from the steps done since the first update."""
        if self._start is None:
            return None
        start_time, start_step = self._start
        done = step - start_step
        if done <= 0:
            return None
        rate = done / max((now or time.monotonic()) - start_time, 1e-9)
        return (self.total - step) / rate

    def line(self, step: int, values: dict, now: float | None = None) -> str:
        frac = min(max(step / self.total, 0.0), 1.0) if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = (
            "=" * max(filled - 1, 0)
            + (">" if 0 < filled < self.width else "=" if filled else "")
            + "." * (self.width - filled)
        )
        eta = format_duration(self.eta_seconds(step, now))
        parts = [f"{step}/{self.total} [{bar}]", f"ETA {eta}"]
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()]
        return " - ".join(parts)

    def update(self, step: int, **values) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self._start is None:  # the first step includes tracing: measure from its end
            self._start = (now, step)
        final = step >= self.total
        if not final and now - self._last_draw < self.min_interval_s:
            return
        self._last_draw = now
        text = self.line(step, values, now)
        if self.interactive:
            pad = max(self._last_line_len - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
            self._last_line_len = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends the in-place line (call before printing anything else)."""
        if self.enabled and self.interactive and self._last_line_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_line_len = 0
