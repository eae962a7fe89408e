"""Progress of long work (seed, first load, email delivery, bench): counts and rates where a person looks.

On a terminal, a bar on standard error that redraws in place; otherwise (cron, a container's log, a file) one
line every EVERY_SECONDS; and, given a `log` (a run's `context.log`, or any logger), the same line into it, so a
run's own log in Dagster shows how far it got. Short work stays quiet: nothing is printed before EVERY_SECONDS.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, Protocol, TextIO

EVERY_SECONDS = 5.0
_REDRAW_SECONDS = 0.2
_BAR_WIDTH = 24


class _Log(Protocol):
    def info(self, msg: str, *args: Any) -> Any: ...


class Progress:
    """`with Progress("emails delivered", total, log=context.log) as progress: ... progress.advance(n)`."""

    def __init__(self, what: str, total: int | None = None, *, unit: str = "rows", log: _Log | None = None,
                 stream: TextIO | None = None, every: float = EVERY_SECONDS) -> None:
        self.what, self.total, self.unit, self.done = what, total, unit, 0
        self.stage_name: str | None = None
        self._log, self._every = log, every
        self._stream = stream if stream is not None else sys.stderr
        self._terminal = bool(getattr(self._stream, "isatty", lambda: False)())
        self._started = self._last_line = self._last_draw = time.monotonic()
        self._shown = False  # something was printed, so the end is printed too

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.finish()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self._started

    def describe(self) -> str:
        """e.g. "emails delivered: 1,200 of 5,000 emails (24%), 310 emails/s, 3.9 s [smtp]"."""
        seconds = self.seconds
        rate = self.done / seconds if seconds > 0 else 0.0
        of = f" of {self.total:,}" if self.total else ""
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        stage = f" [{self.stage_name}]" if self.stage_name else ""
        return f"{self.what}: {self.done:,}{of} {self.unit}{share}, {rate:,.0f} {self.unit}/s, {seconds:.1f} s{stage}"

    def stage(self, name: str) -> None:
        """A named part of the work begins (e.g. a seed step); shown at once once the work has been long."""
        self.stage_name = name
        self._show(force=self._shown)

    def advance(self, count: int = 1) -> None:
        self.done += count
        self._show()

    def finish(self) -> None:
        if self._terminal and self._shown:
            self._stream.write("\r\033[K")
        if self._shown or self.seconds >= self._every:
            self._stream.write(self.describe() + " done\n")
            self._stream.flush()
        if self._log is not None:
            self._log.info(self.describe() + " done")

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if now - self._started < self._every and not force:
            return
        if self._terminal and now - self._last_draw >= _REDRAW_SECONDS:
            self._last_draw = now
            self._stream.write("\r\033[K" + self._bar() + self.describe())
            self._stream.flush()
            self._shown = True
        if now - self._last_line >= self._every or force:
            self._last_line = now
            if not self._terminal:
                self._stream.write(self.describe() + "\n")
                self._stream.flush()
                self._shown = True
            if self._log is not None:
                self._log.info(self.describe())

    def _bar(self) -> str:
        if not self.total:
            return ""
        filled = min(_BAR_WIDTH, int(_BAR_WIDTH * self.done / self.total))
        return "[" + "#" * filled + "." * (_BAR_WIDTH - filled) + "] "
