"""Deliver web.email_outbox (rule E1): to a local Maildir by default, or over SMTP.

Each email is delivered while its row is locked (`FOR UPDATE SKIP LOCKED`) and marked `sent` in that
same short transaction, committed right after the hand-over. So a sent email is never picked again and two
deliverers running at once never both send one email. To the mail folder exactly once: the file is named
by the outbox row (its email_id and dedupe key) and appears in `new/` by an atomic link that refuses a
second file of that name, so a rerun after a kill between the hand-over and the commit finds the file and
only marks the row. Over SMTP a server's acceptance and a failure cannot be told apart after a crash: at
most the one message in hand is offered again, with the same Message-ID (derived from the dedupe key), and
the "sent" mark is committed durably before the next message is handed over. A failure counts an attempt
and is recorded in `last_error`; at `max_attempts` the email is `failed`. When the transport itself is
down (no SMTP server, a Maildir that cannot be written) the call stops after recording it on one email,
rather than spending every queued email's attempts on one outage.

Logs name the email_id and the template only: never an address, a body or a password.
"""

from __future__ import annotations

import email.errors
import email.utils
import hashlib
import logging
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from userdebtor_pipeline.progress import Progress
    from userdebtor_pipeline.settings import EmailSettings

_log = logging.getLogger(__name__)

TRANSPORTS = ("maildir", "smtp")
SMTP_TIMEOUT_SECONDS = 30
_MAX_ERROR_CHARS = 1000


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # emails that reached max_attempts in this call and are now `failed`
    retried: int = 0  # emails that failed in this call and stay `queued` for the next call
    remaining: int = 0  # `queued` emails still to deliver after this call
    transport_error: str | None = None  # set when the call stopped because the transport was down


class _TransportDown(Exception):
    """The transport cannot deliver anything right now; the call stops."""


class _Transport(Protocol):
    # Whether a "sent" mark may be committed without waiting for its WAL flush (the transport is idempotent).
    idempotent: bool

    def send(self, message: EmailMessage, name: str) -> str | None: ...

    def close(self) -> None: ...


class _MaildirTransport:
    """A Maildir a person can open with any mail program, or read as plain files in `<mail_dir>/new`.

    One file per outbox row, named by it: delivering the row again finds its file (in `new/`, or in `cur/`
    once a mail reader has seen it) and writes nothing.
    """

    idempotent = True

    def __init__(self, mail_dir: Path) -> None:
        self._mail_dir = Path(mail_dir)
        self._ready = False
        self._seen: dict[str, str] = {}

    def _folders(self) -> None:
        if not self._ready:
            for sub in ("tmp", "new", "cur"):
                (self._mail_dir / sub).mkdir(parents=True, exist_ok=True)
            # What a mail reader has seen (cur/<name>:<flags>), listed once per batch rather than once per email.
            self._seen = {entry.split(":", 1)[0]: entry for entry in os.listdir(self._mail_dir / "cur")}
            self._ready = True

    def send(self, message: EmailMessage, name: str) -> str | None:
        try:
            self._folders()
            final = self._mail_dir / "new" / name
            found = [final] if final.exists() else []
            if name in self._seen:
                found.append(self._mail_dir / "cur" / self._seen[name])
            if any(path.exists() and path.stat().st_size for path in found):
                return None  # a killed run delivered it; only the mark was lost
            for empty in found:  # left by a machine that crashed before the kernel wrote it: written again
                empty.unlink(missing_ok=True)
            # Written whole under tmp/, then linked into new/: a reader never sees half a file, and the link fails
            # if another deliverer won the race. No fsync per file (it made delivery ten times slower): a killed
            # pipeline loses nothing the kernel has, and a crash of the machine itself
            # may leave an empty file, which the row's next delivery writes again.
            temporary = self._mail_dir / "tmp" / f"{name}.{os.getpid()}"
            temporary.write_bytes(message.as_bytes())
            try:
                os.link(temporary, final)
            except FileExistsError:
                pass
            finally:
                temporary.unlink(missing_ok=True)
        except OSError as exc:
            raise _TransportDown(exc) from exc
        return None

    def close(self) -> None:
        self._ready = False


def maildir_name(email_id: int, dedupe_key: str) -> str:
    """The mail file of one outbox row: its id and a digest of its event, so a rerun finds what a kill left."""
    return f"{email_id:012d}.{hashlib.sha256(dedupe_key.encode('utf-8')).hexdigest()[:24]}.userdebtor"


class _SmtpTransport:
    """One SMTP connection, opened at the first email of a batch and closed at its end."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        starttls: bool,
    ) -> None:
        self._host, self._port = host, port
        self._username, self._password, self._starttls = username, password, starttls
        self._smtp: smtplib.SMTP | None = None

    idempotent = False

    def _connect(self) -> smtplib.SMTP:
        try:
            smtp = smtplib.SMTP(self._host, self._port, timeout=SMTP_TIMEOUT_SECONDS)
        except (OSError, smtplib.SMTPException) as exc:
            raise _TransportDown(exc) from exc
        try:
            smtp.ehlo()
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self._username:
                smtp.login(self._username, self._password or "")
        except (OSError, smtplib.SMTPException) as exc:
            _quietly_close(smtp)
            raise _TransportDown(exc) from exc
        return smtp

    def send(self, message: EmailMessage, name: str) -> str | None:
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            refused = self._smtp.send_message(message)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            # The connection is gone, not just this email refused.
            self._smtp = None
            raise _TransportDown(exc) from exc
        if refused:
            # Accepted for some recipients: sent, with the refused ones noted for a person.
            return f"refused recipients: {', '.join(sorted(refused))}"
        return None

    def close(self) -> None:
        if self._smtp is not None:
            _quietly_close(self._smtp)
            self._smtp = None


def _quietly_close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()


def message_id(dedupe_key: str, from_address: str) -> str:
    """The same Message-ID for every delivery of one event, so a resend is recognisable."""
    digest = hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[:32]
    _, address = email.utils.parseaddr(from_address)
    domain = address.rpartition("@")[2] or "localhost"
    return f"<{digest}.userdebtor@{domain}>"


def build_message(row: Any, from_address: str) -> EmailMessage:
    """The MIME message of one outbox row: plain text, with the HTML as an alternative when there is one."""
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = row.to_address
    message["Subject"] = row.subject
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = message_id(row.dedupe_key, from_address)
    message["X-Userdebtor-Template"] = row.template
    message.set_content(row.body_text)
    if row.body_html:
        message.add_alternative(row.body_html, subtype="html")
    return message


def _describe(exc: BaseException, secrets: tuple[str | None, ...]) -> str:
    """The error as stored in last_error: its kind and message, with any secret blanked out."""
    cause = exc.__cause__ if isinstance(exc, _TransportDown) and exc.__cause__ else exc
    text = f"{type(cause).__name__}: {cause}".strip()
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:_MAX_ERROR_CHARS]


# Candidates of one batch, in email_id order; rows another deliverer holds right now are skipped.
_CANDIDATES_SQL = sa.text(
    "SELECT email_id FROM web.email_outbox"
    " WHERE status = 'queued' AND attempts < :max_attempts AND email_id > :after"
    " ORDER BY email_id LIMIT :batch_size"
    " FOR UPDATE SKIP LOCKED"
)
# One row, locked for the time of its delivery; the status is checked again under the lock.
_LOCK_ONE_SQL = sa.text(
    "SELECT email_id, template, to_address, subject, body_text, body_html, dedupe_key, attempts"
    " FROM web.email_outbox"
    " WHERE email_id = :email_id AND status = 'queued' AND attempts < :max_attempts"
    " FOR UPDATE SKIP LOCKED"
)
_MARK_SENT_SQL = sa.text(
    "UPDATE web.email_outbox SET status = 'sent', sent_at = now(), last_error = :note"
    " WHERE email_id = :email_id"
)
_MARK_FAILED_SQL = sa.text(
    "UPDATE web.email_outbox"
    "   SET attempts = attempts + 1,"
    "       last_error = :error,"
    "       status = CASE WHEN attempts + 1 >= :max_attempts THEN 'failed' ELSE 'queued' END"
    " WHERE email_id = :email_id"
    " RETURNING status, attempts"
)
# Queued emails already at the limit (e.g. after max_attempts was lowered) would never be picked again.
_ASYNC_COMMIT_SQL = sa.text("SET LOCAL synchronous_commit = off")
_EXHAUSTED_SQL = sa.text(
    "UPDATE web.email_outbox SET status = 'failed' WHERE status = 'queued' AND attempts >= :max_attempts"
)
_REMAINING_SQL = sa.text(
    "SELECT count(*) FROM web.email_outbox WHERE status = 'queued' AND attempts < :max_attempts"
)

# Errors that belong to one email (a refused recipient, a header that cannot be written); anything else
# is a bug and propagates, leaving the email queued and untouched.
_EMAIL_ERRORS = (smtplib.SMTPException, ValueError, UnicodeError, email.errors.MessageError)


def _deliver_one(
    conn: Connection,
    email_id: int,
    transport: _Transport,
    from_address: str,
    max_attempts: int,
    secrets: tuple[str | None, ...],
    report: DeliveryReport,
) -> bool:
    """Deliver one email in its own transaction; False when the transport is down and the call must stop."""
    with conn.begin():
        if transport.idempotent:
            # The commit need not wait for its WAL flush: a mark the database server forgets in a crash of its
            # own only delivers the row again, which finds its file. It makes delivery several times faster.
            # Over SMTP the mark is durable before the next message is handed over: one message at most.
            conn.execute(_ASYNC_COMMIT_SQL)
        row = conn.execute(_LOCK_ONE_SQL, {"email_id": email_id, "max_attempts": max_attempts}).first()
        if row is None:
            return True  # sent or taken by another deliverer meanwhile
        error: BaseException | None = None
        transport_down = False
        try:
            note = transport.send(build_message(row, from_address), maildir_name(row.email_id, row.dedupe_key))
        except _TransportDown as exc:
            error, transport_down = exc, True
        except _EMAIL_ERRORS as exc:
            error = exc
        if error is None:
            conn.execute(_MARK_SENT_SQL, {"email_id": email_id, "note": note})
            report.sent += 1
            _log.info("sent email %s (%s)", email_id, row.template)
            return True
        described = _describe(error, secrets)
        status, attempts = conn.execute(
            _MARK_FAILED_SQL, {"email_id": email_id, "error": described, "max_attempts": max_attempts}
        ).one()
        if status == "failed":
            report.failed += 1
            _log.warning("email %s (%s) failed after %s attempts", email_id, row.template, attempts)
        else:
            report.retried += 1
            _log.warning(
                "email %s (%s) not delivered, attempt %s of %s",
                email_id,
                row.template,
                attempts,
                max_attempts,
            )
        if transport_down:
            report.transport_error = described
            return False
        return True


def deliver_outbox(
    web_engine: Engine,
    *,
    transport: str,
    from_address: str,
    smtp_host: str,
    smtp_port: int,
    smtp_username: str | None = None,
    smtp_password: str | None = None,
    smtp_starttls: bool = False,
    mail_dir: Path,
    max_attempts: int = 5,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> DeliveryReport:
    """Deliver every `queued` email with attempts left, in email_id order; what happened, by count.

    `progress` (userdebtor_pipeline.progress) is told the backlog at the start and each email handled.
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"email transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
    if not from_address:
        raise ValueError("email.from_address is empty")
    if max_attempts < 1 or batch_size < 1:
        raise ValueError("max_attempts and batch_size must be at least 1")
    sender: _Transport
    if transport == "maildir":
        sender = _MaildirTransport(Path(mail_dir))
    else:
        sender = _SmtpTransport(smtp_host, smtp_port, smtp_username, smtp_password, smtp_starttls)
    secrets = (smtp_password,)
    report = DeliveryReport()

    with web_engine.connect() as conn:
        with conn.begin():
            report.failed += conn.execute(_EXHAUSTED_SQL, {"max_attempts": max_attempts}).rowcount or 0
            if progress is not None:
                progress.total = int(conn.execute(_REMAINING_SQL, {"max_attempts": max_attempts}).scalar_one())
        after = 0
        keep_going = True
        while keep_going:
            with conn.begin():
                ids = list(
                    conn.execute(
                        _CANDIDATES_SQL,
                        {"max_attempts": max_attempts, "after": after, "batch_size": batch_size},
                    ).scalars()
                )
            if not ids:
                break
            try:
                for email_id in ids:
                    delivered = _deliver_one(conn, email_id, sender, from_address, max_attempts, secrets, report)
                    if progress is not None:
                        progress.advance()
                    if not delivered:
                        keep_going = False
                        break
            finally:
                sender.close()  # one SMTP connection per batch
            after = ids[-1]
        with conn.begin():
            report.remaining = int(conn.execute(_REMAINING_SQL, {"max_attempts": max_attempts}).scalar_one())
    if report.sent or report.failed or report.retried:
        _log.info(
            "email delivery (%s): %s sent, %s retried later, %s failed, %s remaining",
            transport,
            report.sent,
            report.retried,
            report.failed,
            report.remaining,
        )
    return report


def deliver_with_settings(
    web_engine: Engine,
    settings_email: EmailSettings,
    *,
    mail_dir: Path | None = None,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> DeliveryReport:
    """deliver_outbox with the `email:` settings; the Maildir defaults to USERDEBTOR_HOME/mail."""
    from userdebtor_pipeline.paths import mail_dir as default_mail_dir

    password = settings_email.smtp_password
    return deliver_outbox(
        web_engine,
        transport=settings_email.transport,
        from_address=settings_email.from_address,
        smtp_host=settings_email.smtp_host,
        smtp_port=settings_email.smtp_port,
        smtp_username=settings_email.smtp_username,
        smtp_password=password.get_secret_value() if password is not None else None,
        smtp_starttls=settings_email.smtp_starttls,
        mail_dir=mail_dir if mail_dir is not None else default_mail_dir(),
        max_attempts=settings_email.max_attempts,
        batch_size=batch_size,
        progress=progress,
    )
