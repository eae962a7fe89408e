"""Email in the bench: the settings it runs with, a local SMTP server, and the delivery stage.

Every sync sends over SMTP to a port on this machine. During the first load nothing listens there, so its
emails stay queued (the first load is timed without delivering them); the delivery stage then starts a real
SMTP server on that port (aiosmtpd, in its own process, discarding what it receives) and delivers the whole
outbox, timed; the server keeps running for the later syncs. With `--mail hold` no server ever starts and every
email stays queued. Where aiosmtpd is not installed, the delivery stage writes into the home's Maildir and says so.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.memory import MemorySampler
from benchmarks.systems import BenchError, DatabaseUrls, engines

SMTP_HOST = "127.0.0.1"


def free_local_port() -> int:
    with socket.socket() as probe:
        probe.bind((SMTP_HOST, 0))
        return int(probe.getsockname()[1])


def bench_settings_file(home: Path, port: int, transport: str = "smtp") -> Path:
    """Every default, with email over SMTP to `port` on this machine (or into the home's Maildir)."""
    path = home / "userdebtor.bench.yaml"
    if transport == "smtp":
        text = ("# written by `userdebtor bench`: email over SMTP to a local port; emails stay queued until the\n"
                "# bench's SMTP server listens there (the delivery stage), or for the whole run with --mail hold.\n"
                f"email:\n  transport: smtp\n  smtp_host: {SMTP_HOST}\n  smtp_port: {port}\n")
    else:
        text = "# written by `userdebtor bench`: every setting at its default (email into the home's Maildir)\n"
    path.write_text(text, encoding="utf-8")
    return path


def smtp_server_available() -> bool:
    return importlib.util.find_spec("aiosmtpd") is not None


class LocalSmtpServer:
    """aiosmtpd in its own process on SMTP_HOST:port, accepting and discarding every message."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"{SMTP_HOST}:{self.port}", "-c", "aiosmtpd.handlers.Sink"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BenchError(f"the local SMTP server could not start on port {self.port}")
            try:
                with socket.create_connection((SMTP_HOST, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise BenchError(f"the local SMTP server did not listen on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


def delivery_stage(systems: DatabaseUrls, sampler: MemorySampler, home: Path, server: LocalSmtpServer | None
                   ) -> dict[str, Any]:
    """Deliver the queued outbox with the settings, timed; `server` (started here) is the local SMTP server."""
    from benchmarks.measure import progress, rate
    from userdebtor_pipeline.email import deliver_with_settings
    from userdebtor_pipeline.progress import Progress
    from userdebtor_pipeline.settings import load_settings

    _, web = engines(systems)
    if server is not None:
        server.start()
    email = load_settings().email
    smtp = email.transport == "smtp"
    where = f"SMTP to {email.smtp_host}:{email.smtp_port}" if smtp else f"the Maildir {home / 'mail'}"
    where += " (aiosmtpd, discarding)" if server is not None else ""
    with sampler.window() as peaks:
        started = time.perf_counter()
        # A million welcome emails take minutes: a progress line, as the sync's own emails_delivered step gives.
        with Progress("emails delivered", unit="emails") as delivered:
            report = deliver_with_settings(web, email, mail_dir=home / "mail", progress=delivered)
        seconds = round(time.perf_counter() - started, 3)
    progress(f"email_delivery: {report.sent:,} emails in {seconds:,.1f} s over {where}")
    return {"stage": "email_delivery", "success": not report.failed and not report.transport_error,
            "seconds": seconds, "rows_changed": report.sent, "rows_per_second": rate(report.sent, seconds),
            "emails_sent": report.sent, "emails_per_second": rate(report.sent, seconds), "transport": where,
            "smtp": smtp, "failed": report.failed, "remaining": report.remaining,
            "transport_error": report.transport_error or "", "memory": peaks.as_report()}
