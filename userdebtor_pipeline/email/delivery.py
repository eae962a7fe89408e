"""Deliver web.email_outbox (rule E1): to a local Maildir by default, or over SMTP, in batches by a few workers.

A worker claims a batch (`FOR UPDATE SKIP LOCKED`: two deliverers never hold one email), hands it to its
transport (one SMTP connection per batch, see transports) and marks the outcomes in the transaction that
claimed it, committed durably once per batch. A sent email is never picked again; a failure counts an
attempt and is recorded in `last_error`; at `max_attempts` the email is `failed`. When the transport itself
is down (no SMTP server, a Maildir that cannot be written) the call stops after recording it on one email
per worker, rather than spending every queued email's attempts on one outage.

Killed in the middle of a batch, the batch's marks roll back; a rerun must still not send twice:
- Maildir: a row's file is named by the row, so delivering it again finds the file and only marks the row.
- SMTP: a server's acceptance cannot be taken back, so each accepted email is written to
  `userdebtor.email_accepted` on a second connection as soon as the server says so, before the next message
  goes out; a rerun marks those rows sent without offering them again. What a kill can resend is at most the
  one message in hand per worker, with the same Message-ID, as before batching. The trade-off: those journal
  rows commit without waiting for their WAL flush (a synchronous commit per email made delivery disk-bound,
  ~20/s on a busy machine); a kill of the pipeline loses none of them (the server has them), only a crash of
  the database server itself in the fraction of a second before its WAL writer flushes may forget a few,
  and those few emails would then be offered again with their same Message-ID. The batch's own marks are
  committed durably.

Logs name the email_id and the template only: never an address, a body or a password.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.email.letters import Letter, build_message, letter_of, message_id
from userdebtor_pipeline.email.transports import (
    EMAIL_ERRORS,
    MaildirTransport,
    Outcome,
    SmtpTransport,
    Transport,
    TransportDown,
)

if TYPE_CHECKING:
    from userdebtor_pipeline.progress import Progress
    from userdebtor_pipeline.settings import EmailSettings

_log = logging.getLogger(__name__)

TRANSPORTS = ("maildir", "smtp")
DELIVERY_WORKERS = 4  # connections (or Maildir writers) at once: enough to hide round trips, few for a server
_MAX_ERROR_CHARS = 1000
__all__ = ["DeliveryReport", "build_message", "deliver_outbox", "deliver_with_settings", "message_id"]


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # emails that reached max_attempts in this call and are now `failed`
    retried: int = 0  # emails that failed in this call and stay `queued` for the next call
    remaining: int = 0  # `queued` emails still to deliver after this call
    transport_error: str | None = None  # set when the call stopped because the transport was down
    recovered: int = 0  # accepted by the SMTP server in a killed call, marked sent now without a resend


# Emails an SMTP server accepted in a killed call (their batch rolled back) are marked sent, not offered again;
# rows a live deliverer holds are skipped. Journal rows of emails no longer queued are finished with.
_RECOVER_SQL = sa.text(
    """
WITH recoverable AS (
    SELECT o.email_id FROM web.email_outbox o JOIN userdebtor.email_accepted a USING (email_id)
     WHERE o.status = 'queued'
       FOR UPDATE OF o SKIP LOCKED
), recovered AS (
    UPDATE web.email_outbox o
       SET status = 'sent', sent_at = a.accepted_at, last_error = a.note
      FROM recoverable r JOIN userdebtor.email_accepted a USING (email_id)
     WHERE o.email_id = r.email_id
    RETURNING o.email_id
), finished AS (
    DELETE FROM userdebtor.email_accepted a
     WHERE a.email_id IN (SELECT email_id FROM recovered)
        OR NOT EXISTS (SELECT 1 FROM web.email_outbox o WHERE o.email_id = a.email_id AND o.status = 'queued')
)
SELECT count(*) FROM recovered
"""
)
# Every email below this floor was sent, failed or is held (a release moves it down): each call reads from it and
# moves it up, not through every email of past years; `from_start` (the full reconcile) reads from the first row.
_FLOOR_SQL = sa.text("SELECT coalesce(max(seq), 0) FROM userdebtor.watermark WHERE name = 'email_outbox'")
# The first email still queued, or queued within the hour (a transaction that queued it may not have committed
# when this call read), becomes the floor; with none, the row after the newest.
_NEW_FLOOR_SQL = sa.text(
    """
INSERT INTO userdebtor.watermark (name, seq, updated_at)
SELECT 'email_outbox',
       coalesce((SELECT o.email_id FROM web.email_outbox o
                  WHERE o.email_id >= :floor AND (o.status = 'queued' OR o.created_at > now() - interval '1 hour')
                  ORDER BY o.email_id LIMIT 1),
                (SELECT max(o.email_id) + 1 FROM web.email_outbox o WHERE o.email_id >= :floor),
                :floor),
       now()
ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = now() WHERE watermark.seq <> excluded.seq
"""
)
# One batch, in email_id order, locked until its marks commit; an email already accepted is never offered.
_CLAIM_SQL = sa.text(
    "SELECT email_id, template, to_address, subject, body_text, body_html, dedupe_key, attempts"
    "  FROM web.email_outbox o"
    " WHERE status = 'queued' AND attempts < :max_attempts AND email_id > :after"
    "   AND NOT EXISTS (SELECT 1 FROM userdebtor.email_accepted a WHERE a.email_id = o.email_id)"
    " ORDER BY email_id LIMIT :batch_size"
    "   FOR UPDATE SKIP LOCKED"
)
# Run on the driver's connection directly: once per email, where SQLAlchemy's own cost would show.
_JOURNAL_SQL = "INSERT INTO userdebtor.email_accepted (email_id, note) VALUES (%s, %s) ON CONFLICT DO NOTHING"
_MARK_SENT_SQL = sa.text(
    "UPDATE web.email_outbox o SET status = 'sent', sent_at = now(), last_error = s.note"
    "  FROM unnest(CAST(:ids AS bigint[]), CAST(:notes AS text[])) AS s(email_id, note)"
    " WHERE o.email_id = s.email_id"
)
_MARK_FAILED_SQL = sa.text(
    "UPDATE web.email_outbox o"
    "   SET attempts = o.attempts + 1,"
    "       last_error = f.error,"
    "       status = CASE WHEN o.attempts + 1 >= :max_attempts THEN 'failed' ELSE 'queued' END"
    "  FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[])) AS f(email_id, error)"
    " WHERE o.email_id = f.email_id"
    " RETURNING o.email_id, o.status, o.attempts"
)
# The journal's rows commit without waiting for their WAL flush (the trade-off in the module's text).
_JOURNAL_ASYNC_SQL = sa.text("SET synchronous_commit = off")
_JOURNAL_SYNC_SQL = sa.text("RESET synchronous_commit")
_UNJOURNAL_SQL = sa.text("DELETE FROM userdebtor.email_accepted WHERE email_id = ANY(CAST(:ids AS bigint[]))")
_ASYNC_COMMIT_SQL = sa.text("SET LOCAL synchronous_commit = off")
# Queued emails already at the limit (e.g. after max_attempts was lowered) would never be picked again.
_EXHAUSTED_SQL = sa.text(
    "UPDATE web.email_outbox SET status = 'failed'"
    " WHERE status = 'queued' AND attempts >= :max_attempts AND email_id >= :floor"
)
_REMAINING_SQL = sa.text(
    "SELECT count(*) FROM web.email_outbox WHERE status = 'queued' AND attempts < :max_attempts AND email_id >= :floor"
)


def _describe(exc: BaseException, secrets: tuple[str | None, ...]) -> str:
    """The error as stored in last_error: its kind and message, with any secret blanked out."""
    cause = exc.__cause__ if isinstance(exc, TransportDown) and exc.__cause__ else exc
    text = f"{type(cause).__name__}: {cause}".strip()
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:_MAX_ERROR_CHARS]


class _Delivery:
    """One call's shared state: the cursor through the queue, the report, and the stop when the transport is down."""

    def __init__(self, engine: Engine, from_address: str, max_attempts: int, batch_size: int, floor: int,
                 secrets: tuple[str | None, ...], progress: Progress | None) -> None:
        self.engine, self.from_address = engine, from_address
        self.max_attempts, self.batch_size, self.secrets = max_attempts, batch_size, secrets
        self.progress = progress
        self.report = DeliveryReport()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._after = floor - 1  # the last email_id claimed: an email retried in this call waits for the next
        # One autocommit connection, shared by the workers, for the acceptance journal (SMTP only).
        self.journal: Any = None  # the driver's (psycopg) connection, in autocommit
        self._journal_lock = threading.Lock()

    def claim(self, conn: Connection, batch_size: int | None = None) -> list[Any]:
        """The next batch, locked in the caller's open transaction; claims are taken one at a time."""
        with self._lock:
            rows = conn.execute(_CLAIM_SQL, {"max_attempts": self.max_attempts, "after": self._after,
                                             "batch_size": batch_size or self.batch_size}).all()
            if rows:
                self._after = max(self._after, rows[-1].email_id)
            return rows

    def work(self, transport: Transport) -> None:
        """A worker: batches until the queue is empty or the transport is down."""
        try:
            with self.engine.connect() as conn:
                while not self.stop.is_set():
                    with conn.begin():
                        if transport.idempotent:
                            # A mark the database server forgets in a crash of its own only delivers the row
                            # again, which finds its file: the commit need not wait for its WAL flush.
                            conn.execute(_ASYNC_COMMIT_SQL)
                        rows = self.claim(conn)
                        if not rows:
                            return
                        try:
                            self._deliver_batch(conn, transport, rows)
                        finally:
                            transport.close()  # one SMTP connection per batch
        except BaseException:
            self.stop.set()  # a bug: the other workers stop too, and it is raised to the caller
            raise

    def accepted(self, letter: Letter, note: str | None) -> None:
        """Journal one email the SMTP server accepted, before its worker sends the next (see the module's text)."""
        assert self.journal is not None
        with self._journal_lock:
            self.journal.execute(_JOURNAL_SQL, (letter.email_id, note))

    def _deliver_batch(self, conn: Connection, transport: Transport, rows: list[Any]) -> None:
        letters: list[Letter] = []
        outcomes: list[Outcome] = []
        for row in rows:
            try:
                letters.append(letter_of(row, self.from_address))
            except EMAIL_ERRORS as exc:
                outcomes.append(Outcome(Letter(row.email_id, row.template, row.dedupe_key), error=exc))

        down: TransportDown | None = None
        try:
            for outcome in transport.deliver(letters, self.accepted, self.stop):
                outcomes.append(outcome)
                if self.progress is not None:
                    with self._lock:
                        self.progress.advance()
        except TransportDown as exc:
            down = exc
        try:
            transport.flush()  # Maildir: the batch's files on disk before their marks commit
        except TransportDown as exc:  # nothing is marked: the next delivery finds the files written
            outcomes, down = [], exc
        if down is not None and down.letter is not None:
            outcomes.append(Outcome(down.letter, error=down))
        self._record(conn, outcomes, down)

    def _record(self, conn: Connection, outcomes: list[Outcome], down: TransportDown | None) -> None:
        sent = [o for o in outcomes if o.error is None]
        refused = [o for o in outcomes if o.error is not None]
        if sent:
            ids = [o.letter.email_id for o in sent]
            conn.execute(_MARK_SENT_SQL, {"ids": ids, "notes": [o.note for o in sent]})
            conn.execute(_UNJOURNAL_SQL, {"ids": ids})
        marked = []
        if refused:
            assert all(o.error is not None for o in refused)
            marked = conn.execute(_MARK_FAILED_SQL, {
                "ids": [o.letter.email_id for o in refused],
                "errors": [_describe(o.error, self.secrets) for o in refused if o.error is not None],
                "max_attempts": self.max_attempts,
            }).all()
        templates = {o.letter.email_id: o.letter.template for o in outcomes}
        with self._lock:
            self.report.sent += len(sent)
            for email_id, status, attempts in marked:
                if status == "failed":
                    self.report.failed += 1
                    _log.warning("email %s (%s) failed after %s attempts", email_id, templates[email_id], attempts)
                else:
                    self.report.retried += 1
                    _log.warning("email %s (%s) not delivered, attempt %s of %s", email_id, templates[email_id],
                                 attempts, self.max_attempts)
            if down is not None:
                self.report.transport_error = _describe(down, self.secrets)
                self.stop.set()
        _log.info("sent %s email(s) of a batch of %s", len(sent), len(outcomes))

    def outage(self, error: TransportDown) -> None:
        """The transport is down before anything went out: recorded as an attempt on the first queued email."""
        with self.engine.connect() as conn, conn.begin():
            rows = self.claim(conn, batch_size=1)
            if rows:
                letter = Letter(rows[0].email_id, rows[0].template, rows[0].dedupe_key)
                error.letter = letter
                self._record(conn, [Outcome(letter, error=error)], error)
            else:
                self.report.transport_error = _describe(error, self.secrets)


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
    workers: int = DELIVERY_WORKERS,
    progress: Progress | None = None,
    from_start: bool = False,
    move_floor: bool = True,
) -> DeliveryReport:
    """Deliver every `queued` email with attempts left, in batches of `batch_size` by up to `workers` at once.

    `progress` (userdebtor_pipeline.progress) is told the backlog at the start and each email handled. The outbox
    is read from the floor the last call left (`from_start`: from its first email); `move_floor=False` leaves
    it where it is (a failed run's warning: such a run changes nothing of the integration's state).
    """
    if transport not in TRANSPORTS:
        raise ValueError(f"email transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
    if not from_address:
        raise ValueError("email.from_address is empty")
    if max_attempts < 1 or batch_size < 1 or workers < 1:
        raise ValueError("max_attempts, batch_size and workers must be at least 1")

    def new_transport() -> Transport:
        if transport == "maildir":
            return MaildirTransport(Path(mail_dir))
        return SmtpTransport(smtp_host, smtp_port, smtp_username, smtp_password, smtp_starttls)

    with web_engine.connect() as conn:
        floor = 0 if from_start else int(conn.execute(_FLOOR_SQL).scalar_one())
    delivery = _Delivery(web_engine, from_address, max_attempts, batch_size, floor, (smtp_password,), progress)
    report = delivery.report
    limits = {"max_attempts": max_attempts, "floor": floor}
    with web_engine.begin() as conn:
        report.failed += conn.execute(_EXHAUSTED_SQL, limits).rowcount or 0
        report.recovered = int(conn.execute(_RECOVER_SQL).scalar_one())
        backlog = int(conn.execute(_REMAINING_SQL, limits).scalar_one())
    failed_before = report.failed
    if progress is not None:
        progress.total = backlog
    if report.recovered:
        _log.warning("%s email(s) accepted by the server in an interrupted delivery marked sent, not resent",
                     report.recovered)
    if backlog:
        # The first connection proves the transport works before any worker claims a batch.
        first = new_transport()
        try:
            first.open()
        except TransportDown as exc:
            delivery.outage(exc)
        else:
            pool = [first] + [new_transport() for _ in range(min(workers, -(-backlog // batch_size)) - 1)]
            with ExitStack() as stack:
                if not first.idempotent:
                    journal = stack.enter_context(web_engine.connect())
                    journal.execution_options(isolation_level="AUTOCOMMIT").execute(_JOURNAL_ASYNC_SQL)
                    stack.callback(journal.execute, _JOURNAL_SYNC_SQL)
                    delivery.journal = journal.connection.driver_connection
                with ThreadPoolExecutor(max_workers=len(pool), thread_name_prefix="email-delivery") as executor:
                    futures = [executor.submit(delivery.work, sender) for sender in pool]
                for future in futures:
                    future.result()  # a bug in one worker is raised here, its batch rolled back
    with web_engine.begin() as conn:
        # Counted again only when an email left the queue: a backlog held by a server that is down (or a run with
        # nothing to send) stays what it was, and a count of a large one reads the whole outbox (1.7 s at a million).
        left_queue = report.sent or report.failed > failed_before
        report.remaining = int(conn.execute(_REMAINING_SQL, limits).scalar_one()) if left_queue else backlog
        if move_floor:
            conn.execute(_NEW_FLOOR_SQL, {"floor": floor})
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
    from_start: bool = False,
    move_floor: bool = True,
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
        from_start=from_start,
        move_floor=move_floor,
    )
