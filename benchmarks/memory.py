"""Peak memory of a stage: this process and the PostgreSQL servers on this machine, sampled in a background thread.

The memory goal is this process's RSS plus the largest PostgreSQL backend's RSS, taken at one instant.
The server's summed RSS counts the shared buffer pool once per backend that touched it; its PSS (shared pages split
among the processes that map them) is what the whole server really holds: both are reported beside the goal's
figure.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Engine

MB = 1024 * 1024
SAMPLE_SECONDS = 0.2
# RSS is read from /proc/<pid>/statm, which costs next to nothing; PSS needs the kernel to walk each process's
# page tables (smaps_rollup, about 12 ms of CPU a sample at a million rows), so it is read every this many samples:
# a sampler that took a tenth of a core would slow the stages it measures.
PSS_EVERY = 10

@dataclass
class MemoryPeaks:
    """Peaks of one stage, and its samples (time, python RSS, postgres PSS) so peaks can be put on steps."""

    python_rss: int = 0
    postgres_rss: int = 0
    postgres_pss: int = 0
    total_rss: int = 0  # this process + PostgreSQL RSS, at the same instant
    total: int = 0  # this process RSS + PostgreSQL PSS, at the same instant
    largest_backend_rss: int = 0  # the largest single PostgreSQL process
    python_plus_backend: int = 0  # this process RSS + the largest backend's RSS, at the same instant (the goal)
    samples: int = 0
    timeline: list[tuple[float, int, int]] = field(default_factory=list)

    def as_report(self) -> dict[str, Any]:
        maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return {
            "python_peak_rss_mb": round(self.python_rss / MB, 1),
            "python_maxrss_mb": round(maxrss_kb / 1024, 1),
            "postgres_peak_rss_mb": round(self.postgres_rss / MB, 1) if self.samples else None,
            "postgres_peak_pss_mb": round(self.postgres_pss / MB, 1) if self.samples else None,
            "peak_total_rss_mb": round(self.total_rss / MB, 1),
            "peak_total_mb": round(self.total / MB, 1),
            "postgres_largest_backend_rss_mb": round(self.largest_backend_rss / MB, 1) if self.samples else None,
            "peak_python_plus_backend_mb": round(self.python_plus_backend / MB, 1),
            "samples": self.samples,
        }

    def by_step(self, windows: Mapping[str, tuple[float, float]], top: int = 8) -> dict[str, dict[str, float]]:
        """The steps that raised this process's memory most while they ran (its RSS rarely falls back, so the
        step that set a peak is the one that grew it), with the peaks of this process and of the server."""
        peaks: dict[str, dict[str, float]] = {}
        for step, (start, end) in windows.items():
            before = [py for at, py, _ in self.timeline if at <= start]
            inside = [(py, pg) for at, py, pg in self.timeline if start <= at <= end]
            if inside:
                python_peak = max(py for py, _ in inside)
                baseline = before[-1] if before else inside[0][0]
                peaks[step] = {"python_growth_mb": round(max(0, python_peak - baseline) / MB, 1),
                               "python_peak_rss_mb": round(python_peak / MB, 1),
                               "postgres_peak_pss_mb": round(max(pg for _, pg in inside) / MB, 1)}
        ranked = sorted(peaks.items(), key=lambda item: (-item[1]["python_growth_mb"],
                                                         -item[1]["postgres_peak_pss_mb"]))
        return dict(ranked[:top])


class MemorySampler(threading.Thread):
    """Samples RSS of this process and of each PostgreSQL server (postmaster and children) every 0.2 s, and the
    server's PSS every PSS_EVERY samples."""

    def __init__(self, postmaster_pids: list[int], interval: float = SAMPLE_SECONDS) -> None:
        super().__init__(name="bench-memory-sampler", daemon=True)
        self._me = psutil.Process()
        self._postmasters = [psutil.Process(pid) for pid in postmaster_pids]
        self._interval = interval
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._peaks = MemoryPeaks()
        self._count = 0
        self._last_pss = 0

    def sample(self, *, pss: bool = False) -> None:
        python_rss = self._me.memory_info().rss
        pg_rss = pg_pss = largest = 0
        seen = 0
        self._count += 1
        pss = pss or self._count % PSS_EVERY == 1
        for postmaster in self._postmasters:
            try:
                processes = [postmaster, *postmaster.children(recursive=True)]
            except psutil.Error:
                continue
            for process in processes:
                try:
                    info = process.memory_full_info() if pss else process.memory_info()
                except psutil.Error:  # a backend that ended meanwhile
                    continue
                pg_rss += info.rss
                largest = max(largest, info.rss)
                pg_pss += getattr(info, "pss", info.rss)
                seen += 1
        if pss:
            self._last_pss = pg_pss
        else:  # between reads of PSS, the last one stands (the summed RSS would overstate it)
            pg_pss = self._last_pss
        with self._lock:
            peaks = self._peaks
            peaks.python_rss = max(peaks.python_rss, python_rss)
            if seen:
                peaks.postgres_rss = max(peaks.postgres_rss, pg_rss)
                peaks.postgres_pss = max(peaks.postgres_pss, pg_pss)
                peaks.largest_backend_rss = max(peaks.largest_backend_rss, largest)
                peaks.samples += 1
            peaks.total_rss = max(peaks.total_rss, python_rss + pg_rss)
            peaks.total = max(peaks.total, python_rss + pg_pss)
            peaks.python_plus_backend = max(peaks.python_plus_backend, python_rss + largest)
            peaks.timeline.append((time.time(), python_rss, pg_pss))

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            self.sample()

    def stop(self) -> None:
        self._stop_event.set()

    @contextmanager
    def window(self) -> Iterator[MemoryPeaks]:
        """Peaks of one stage: reset at its start, sampled once more at its end (short stages count too)."""
        with self._lock:
            self._peaks = MemoryPeaks()
        self.sample(pss=True)
        peaks = self._peaks
        yield peaks
        self.sample(pss=True)


def postmaster_pids(engines: list[Engine]) -> list[int]:
    """The postmaster of each database's server when it runs on this machine (a backend's parent)."""
    pids: set[int] = set()
    for engine in engines:
        try:
            with engine.connect() as conn:
                backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            parent = psutil.Process(backend).parent()
        except (psutil.Error, sa.exc.SQLAlchemyError):  # a server on another machine: not sampled
            continue
        if parent is not None and "postgres" in parent.name():
            pids.add(parent.pid)
    return sorted(pids)

