"""Emails (rule E1): rendering, the outbox, one-time tokens, held emails (U3) and delivery.

Real PostgreSQL (the `engines` fixture) and a real SMTP server (aiosmtpd on 127.0.0.1); nothing is mocked.
"""

from __future__ import annotations

import mailbox
import os
import re
import signal
import subprocess
import sys
import threading
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.smtp import PipeliningRecorder, Recorder, Refuser, free_port, serving
from userdebtor_pipeline import report
from userdebtor_pipeline.email import (
    TEMPLATES,
    EmailTemplateError,
    OutgoingEmail,
    deliver_outbox,
    hash_token,
    issue_token,
    message_id,
    new_token,
    queue_email,
    queue_emails,
    queue_warning,
    release_held_emails,
    render_email,
    token_link,
)
from userdebtor_pipeline.email import delivery as delivery_sql

FROM = "Bush Hardware <store@example.com>"
SITE = "https://shop.example.com.au"
SMTP_PASSWORD = "s3cret-Relay-pw"

# A value after "password:" in any email would mean a password was sent; the contract forbids it.
PASSWORD_VALUE = re.compile(r"password\s*:\s*\S", re.IGNORECASE)

SAMPLE_CONTEXTS: dict[str, dict[str, Any]] = {
    "user_debtor_new_user": {
        "link": f"{SITE}/account/set-password?token=abc",
        "name": "Ann Citizen",
        "email_address": "ann@example.com",
        "account_code": "WEB_000001",
        "expires_hours": 48,
    },
    "user_debtor_warning": {
        "rule": "U5",
        "kind": "email_collision",
        "subject_key": "debtor:C10001",
        "summary": "ERP email of C10001 is already another user's login",
        "details": {"dr_cust_code": "C10001", "dr_email": "bob@example.com"},
        "action": "Correct the email in the ERP.",
    },
    "instant_account_verify": {"link": f"{SITE}/account/verify-email?token=abc", "accounts": ["C1", "C2"]},
    "account_link_verify": {"link": f"{SITE}/account/verify-email?token=abc", "accounts": ["C1"]},
    "instant_account_reverify": {"link": f"{SITE}/account/verify-email?token=abc", "days": 90},
    "registration_pending_approval": {"name": "Ann", "account_code": "C10001"},
    "sync_run_failed": {"run_id": "run-1", "error": "could not reach the ERP database"},
}


def _smtp(port: int, **overrides: Any) -> dict[str, Any]:
    return {
        "transport": "smtp",
        "from_address": FROM,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "mail_dir": Path("/nonexistent"),
    } | overrides


def _queue(web: sa.Engine, dedupe_key: str, *, to: str = "ann@example.com", **kwargs: Any) -> int | None:
    with web.begin() as conn:
        return queue_email(
            conn,
            template="user_debtor_new_user",
            to_address=to,
            context=SAMPLE_CONTEXTS["user_debtor_new_user"],
            dedupe_key=dedupe_key,
            templates_dir=None,
            **kwargs,
        )


def _row(web: sa.Engine, email_id: int) -> sa.Row:
    with web.connect() as conn:
        return conn.execute(
            sa.text("SELECT * FROM web.email_outbox WHERE email_id = :i"), {"i": email_id}
        ).one()


def _new_user(web: sa.Engine, email: str, status: str) -> int:
    with web.begin() as conn:
        return conn.execute(
            sa.text(
                "INSERT INTO web.app_user (email_address, role, status)"
                " VALUES (:e, 'B2C', :s) RETURNING user_id"
            ),
            {"e": email, "s": status},
        ).scalar_one()


# ---------------------------------------------------------------- rendering


def test_every_builtin_template_renders_text_and_html() -> None:
    assert set(SAMPLE_CONTEXTS) == set(TEMPLATES)
    for name, context in SAMPLE_CONTEXTS.items():
        email = render_email(name, context, None)
        assert email.subject and "\n" not in email.subject, name
        assert email.body_text.strip(), name
        assert email.body_html and email.body_html.lstrip().startswith("<!DOCTYPE html>"), name


def test_operator_folder_overrides_per_file(tmp_path: Path) -> None:
    (tmp_path / "user_debtor_new_user.subject.txt").write_text("Hello {{ name }}, your login is ready\n")
    (tmp_path / "user_debtor_new_user.html").write_text("<p>Hi {{ name }}: <a href='{{ link }}'>go</a></p>\n")
    context = SAMPLE_CONTEXTS["user_debtor_new_user"] | {"name": "Tom & <Jerry>"}

    email = render_email("user_debtor_new_user", context, tmp_path)

    assert email.subject == "Hello Tom & <Jerry>, your login is ready"  # .txt is never HTML-escaped
    assert (
        email.body_html
        == "<p>Hi Tom &amp; &lt;Jerry&gt;: <a href='https://shop.example.com.au/account/set-password?token=abc'>go</a></p>\n"
    )
    # The file the operator did not replace comes from the built-in set.
    assert email.body_text == render_email("user_debtor_new_user", context, None).body_text
    assert "Tom & <Jerry>" in email.body_text
    # Other templates are untouched by the operator's folder.
    assert render_email("sync_run_failed", SAMPLE_CONTEXTS["sync_run_failed"], tmp_path).subject.startswith(
        "[userdebtor] Sync run run-1 failed"
    )


def test_operator_can_replace_the_shared_layout(tmp_path: Path) -> None:
    (tmp_path / "_base.html").write_text("<main>{% block content %}{% endblock %}</main>")
    email = render_email(
        "registration_pending_approval", SAMPLE_CONTEXTS["registration_pending_approval"], tmp_path
    )
    assert email.body_html is not None
    assert email.body_html.startswith("<main>") and "<strong>C10001</strong>" in email.body_html


def test_e1_a_template_the_operator_edits_is_used_by_the_next_email(tmp_path: Path) -> None:
    """Templates are read once for a folder as it is (not looked at again for each of a million emails), and an
    edit, an added file or a removed one is taken by the next email rendered, in the same process."""
    layout = tmp_path / "_base.html"
    layout.write_text("<main>{% block content %}{% endblock %}</main>")
    context = SAMPLE_CONTEXTS["registration_pending_approval"]
    assert render_email("registration_pending_approval", context, tmp_path).body_html.startswith("<main>")

    layout.write_text("<body>{% block content %}{% endblock %}</body>")  # same size: its change time tells
    stamp = layout.stat().st_mtime_ns + 1_000_000
    os.utime(layout, ns=(stamp, stamp))
    assert render_email("registration_pending_approval", context, tmp_path).body_html.startswith("<body>")

    (tmp_path / "registration_pending_approval.subject.txt").write_text("Waiting for approval\n")
    assert render_email("registration_pending_approval", context, tmp_path).subject == "Waiting for approval"

    layout.unlink()
    assert render_email("registration_pending_approval", context, tmp_path).body_html.lstrip().startswith(
        "<!DOCTYPE html>")


def test_unknown_template_missing_variable_and_bad_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EmailTemplateError, match="unknown email template 'no_such_email'"):
        render_email("no_such_email", {}, None)
    with pytest.raises(EmailTemplateError, match="unknown email template"):
        render_email("../../etc/passwd", {}, None)
    with pytest.raises(EmailTemplateError, match="needs link"):
        render_email("user_debtor_new_user", {"name": "Ann"}, None)
    (tmp_path / "user_debtor_new_user.txt").write_text("Hi {{ nmae }}\n{{ link }}\n")
    with pytest.raises(EmailTemplateError, match="nmae"):
        render_email("user_debtor_new_user", SAMPLE_CONTEXTS["user_debtor_new_user"], tmp_path)
    with pytest.raises(EmailTemplateError, match="is not a folder"):
        render_email("user_debtor_new_user", SAMPLE_CONTEXTS["user_debtor_new_user"], tmp_path / "missing")


def test_no_email_carries_a_password() -> None:
    for name, context in SAMPLE_CONTEXTS.items():
        email = render_email(name, context, None)
        for part in (email.subject, email.body_text, email.body_html or ""):
            assert not PASSWORD_VALUE.search(part), name
    welcome = render_email("user_debtor_new_user", SAMPLE_CONTEXTS["user_debtor_new_user"], None)
    assert "set your password" in welcome.body_text
    assert SAMPLE_CONTEXTS["user_debtor_new_user"]["link"] in welcome.body_text
    assert SAMPLE_CONTEXTS["user_debtor_new_user"]["link"] in (welcome.body_html or "")


# ---------------------------------------------------------------- tokens


def test_token_table_holds_only_the_sha256_of_the_link_token(engines: Any) -> None:
    token, digest = new_token()
    assert len(token) >= 43 and digest == hash_token(token) and re.fullmatch(r"[0-9a-f]{64}", digest)

    user_id = _new_user(engines.web, "ann@example.com", "Active")
    with engines.web.begin() as conn:
        token = issue_token(conn, user_id, "set_password", 48)
        link = token_link(SITE, "set_password", token)
        email_id = queue_email(
            conn,
            template="user_debtor_new_user",
            to_address="ann@example.com",
            context={"link": link, "name": "Ann"},
            dedupe_key=f"new_user:{user_id}",
            templates_dir=None,
        )

    with engines.web.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT token_hash, user_id, purpose, expires_at - created_at AS ttl"
                " FROM web.verification_token"
            )
        ).all()
    assert len(rows) == 1
    stored = rows[0]
    assert stored.token_hash == hash_token(token) and stored.token_hash != token
    assert (stored.user_id, stored.purpose, stored.ttl.total_seconds()) == (
        user_id,
        "set_password",
        48 * 3600,
    )

    assert email_id is not None
    body = _row(engines.web, email_id).body_text
    assert f"{SITE}/account/set-password?token={token}" in body
    assert stored.token_hash not in body
    assert not PASSWORD_VALUE.search(body)

    with engines.web.begin() as conn, pytest.raises(ValueError, match="purpose"):
        issue_token(conn, user_id, "login", 48)


# ---------------------------------------------------------------- the outbox


def test_the_same_event_queues_one_email(engines: Any) -> None:
    first = _queue(engines.web, "new_user:debtor:C10001")
    second = _queue(engines.web, "new_user:debtor:C10001")
    assert first is not None and second is None
    with engines.web.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, template, to_address FROM web.email_outbox")).all()
    assert [tuple(r) for r in rows] == [("queued", "user_debtor_new_user", "ann@example.com")]


def test_e1_a_queued_email_holds_every_character_as_rendered(engines: Any) -> None:
    """Rendered emails go to the outbox as binary text arrays: quotes, backslashes, braces, commas, non-ASCII and
    a literal "NULL" arrive as they were, in order, each in its own row."""
    awkward = ['O\'Brien "Jo", {Ltd}', "back\\slash, comma", "Zoë Ünal 東京", "NULL"]
    emails = [OutgoingEmail(to_address=f"p{i}@example.com", context={"name": name}, dedupe_key=f"pending:{i}")
              for i, name in enumerate(awkward)]
    with engines.web.begin() as conn:
        ids = queue_emails(conn, template="registration_pending_approval", emails=emails, templates_dir=None)
    assert list(ids) == [f"pending:{i}" for i in range(len(awkward))]
    with engines.web.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT to_address, subject, body_text, body_html FROM web.email_outbox ORDER BY email_id")).all()
    for email, row in zip(emails, rows, strict=True):
        rendered = render_email("registration_pending_approval", email.context)
        assert tuple(row) == (email.to_address, rendered.subject, rendered.body_text, rendered.body_html)
    assert all(name in row.body_text for name, row in zip(awkward, rows, strict=True))


def test_email_rolls_back_with_the_change_that_caused_it(engines: Any) -> None:
    with pytest.raises(RuntimeError), engines.web.begin() as conn:
        queue_email(
            conn,
            template="registration_pending_approval",
            to_address="ann@example.com",
            context={},
            dedupe_key="pending:1",
            templates_dir=None,
        )
        raise RuntimeError("the change failed")
    with engines.web.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM web.email_outbox")).scalar() == 0


def test_warning_is_queued_once_per_event_and_names_rule_record_and_action(engines: Any) -> None:
    kwargs: dict[str, Any] = {
        "settings_email": {"site_url": SITE, "templates_dir": None},
        "warning_to": "erp-admin@example.com",
        "rule": "U5",
        "kind": "email_collision",
        "subject_key": "debtor:C10001",
        "summary": "C10001's new email bob@example.com is already another user's login",
        "details": {"dr_cust_code": "C10001", "dr_email": "bob@example.com", "other_user_id": "42"},
        "templates_dir": None,
    }
    with engines.web.begin() as conn:
        first = queue_warning(conn, **kwargs)
        again = queue_warning(conn, **kwargs)
        nobody = queue_warning(conn, **(kwargs | {"warning_to": "", "subject_key": "debtor:C2"}))
    assert first is not None and again is None and nobody is None

    row = _row(engines.web, first)
    assert row.dedupe_key == "warning:email_collision:debtor:C10001"
    assert row.template == "user_debtor_warning" and row.to_address == "erp-admin@example.com"
    assert row.subject == "[userdebtor] C10001's new email bob@example.com is already another user's login"
    for expected in ("U5", "email collision", "debtor:C10001", "dr_email: bob@example.com", "WHAT TO DO"):
        assert expected in row.body_text
    assert "Correct the debtor's email in the ERP" in row.body_text  # the rule's default advice


def test_held_email_is_released_only_once_the_user_is_active(engines: Any, tmp_path: Path) -> None:
    user_id = _new_user(engines.web, "pending@example.com", "PendingApproval")
    email_id = _queue(engines.web, f"new_user:{user_id}", status="held", hold_for_user_id=user_id)
    assert email_id is not None
    mail = tmp_path / "mail"

    with engines.web.begin() as conn:
        assert release_held_emails(conn) == 0
    report = deliver_outbox(engines.web, **(_smtp(1) | {"transport": "maildir", "mail_dir": mail}))
    assert (report.sent, report.remaining) == (0, 0)
    assert _row(engines.web, email_id).status == "held"

    with engines.web.begin() as conn:
        conn.execute(sa.text("UPDATE web.app_user SET status = 'Active' WHERE user_id = :u"), {"u": user_id})
        assert release_held_emails(conn) == 1
        assert release_held_emails(conn) == 0
        assert conn.execute(sa.text("SELECT count(*) FROM userdebtor.email_hold")).scalar() == 0
    assert _row(engines.web, email_id).status == "queued"

    report = deliver_outbox(engines.web, **(_smtp(1) | {"transport": "maildir", "mail_dir": mail}))
    assert report.sent == 1 and _row(engines.web, email_id).status == "sent"


# ---------------------------------------------------------------- delivery


def test_maildir_delivery_writes_a_message_a_person_can_open(engines: Any, tmp_path: Path) -> None:
    email_id = _queue(engines.web, "new_user:debtor:C10001")
    assert email_id is not None
    mail = tmp_path / "home" / "mail"

    report = deliver_outbox(engines.web, **(_smtp(1) | {"transport": "maildir", "mail_dir": mail}))

    assert (report.sent, report.failed, report.retried, report.remaining) == (1, 0, 0, 0)
    files = list((mail / "new").iterdir())
    assert len(files) == 1
    message = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert message["To"] == "ann@example.com" and message["From"] == FROM
    assert message["Subject"] == "Welcome: set your password to start ordering online"
    assert message["Message-ID"] == message_id("new_user:debtor:C10001", FROM)
    assert message["Date"]
    assert "set your password" in message.get_body(("plain",)).get_content()
    assert "<!DOCTYPE html>" in message.get_body(("html",)).get_content()
    assert len(mailbox.Maildir(str(mail), create=False)) == 1  # what a mail program sees

    row = _row(engines.web, email_id)
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 0


def _floor(web: Any) -> int:
    with web.connect() as conn:
        return int(conn.execute(sa.text("SELECT seq FROM userdebtor.watermark WHERE name = 'email_outbox'")).scalar())


def test_e1_delivery_reads_the_outbox_from_where_emails_still_wait(engines: Any, tmp_path: Path) -> None:
    """E1 at scale: a call reads the outbox from the first email still waiting, not every email of past years.
    A held email released below that point is delivered; an email put back by hand waits for the full reconcile."""
    maildir = _smtp(1) | {"transport": "maildir", "mail_dir": tmp_path / "mail"}
    old = [_queue(engines.web, f"new_user:debtor:OLD{n}") for n in range(3)]
    user_id = _new_user(engines.web, "pending@example.com", "PendingApproval")
    held = _queue(engines.web, f"new_user:{user_id}", status="held", hold_for_user_id=user_id)
    assert deliver_outbox(engines.web, **maildir).sent == 3
    with engines.web.begin() as conn:  # a day later: nothing of that delivery may still be committing
        conn.execute(sa.text("UPDATE web.email_outbox SET created_at = now() - interval '1 day'"))
    deliver_outbox(engines.web, **maildir)
    assert _floor(engines.web) == held + 1, "every email below it was sent or is held"

    with engines.web.begin() as conn:
        conn.execute(sa.text("UPDATE web.email_outbox SET status = 'queued' WHERE email_id = :e"), {"e": old[1]})
        conn.execute(sa.text("UPDATE web.app_user SET status = 'Active' WHERE user_id = :u"), {"u": user_id})
        assert release_held_emails(conn) == 1
    assert _floor(engines.web) == held

    assert deliver_outbox(engines.web, **maildir).sent == 1
    assert _row(engines.web, held).status == "sent"
    assert _row(engines.web, old[1]).status == "queued", "below the floor: the full reconcile's call finds it"
    assert deliver_outbox(engines.web, **maildir, from_start=True).sent == 1
    assert _row(engines.web, old[1]).status == "sent"


def test_e1_each_run_counts_its_backlog_from_the_index_of_waiting_emails(engines: Any) -> None:
    """E1 at scale: the backlog count, the emails failed at the attempt limit and the sync's outbox summary read the
    outbox's index of waiting emails, not the sent history (several seconds a run at a million queued emails).
    With sequential scans off, a query the index cannot serve would still show one."""
    with engines.web.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO web.email_outbox (template, to_address, subject, body_text, dedupe_key, status)"
            " SELECT 'user_debtor_new_user', 'a@example.com', 's', 'b', 'sent:' || n, 'sent'"
            "  FROM generate_series(1, 2000) AS n"))
        conn.execute(sa.text("ANALYZE web.email_outbox"))
    queries = {"failed at the limit": (delivery_sql._EXHAUSTED_SQL, {"max_attempts": 5, "floor": 1}),
               "backlog": (delivery_sql._REMAINING_SQL, {"max_attempts": 5, "floor": 1}),
               "summary": (sa.text(report._WAITING_EMAILS_SQL), {})}
    with engines.web.connect() as conn:
        conn.execute(sa.text("SET enable_seqscan = off"))
        for what, (query, params) in queries.items():
            plan = "\n".join(conn.execute(sa.text(f"EXPLAIN {query.text}"), params).scalars())
            assert "email_outbox_waiting_idx" in plan and "Seq Scan" not in plan, (what, plan)
        conn.rollback()
    _queue(engines.web, "new_user:debtor:WAITING")
    with engines.web.connect() as conn:
        assert dict(conn.execute(sa.text(report._WAITING_EMAILS_SQL)).all()) == {"queued": 1}


def test_e1_maildir_rerun_after_a_kill_between_file_and_mark_delivers_once(engines: Any, tmp_path: Path) -> None:
    """E1: a run killed after the file was written and before "sent" was committed writes no second file."""
    email_id = _queue(engines.web, "new_user:debtor:C10002")
    mail = tmp_path / "mail"
    deliver_outbox(engines.web, **(_smtp(1) | {"transport": "maildir", "mail_dir": mail}))
    with engines.web.begin() as conn:  # the commit of the mark is what the kill lost
        conn.execute(sa.text("UPDATE web.email_outbox SET status = 'queued', sent_at = NULL WHERE email_id = :i"),
                     {"i": email_id})
    # A mail reader may have moved the file to cur/ with its flags meanwhile.
    (seen,) = (mail / "new").iterdir()
    seen.rename(mail / "cur" / f"{seen.name}:2,S")

    report = deliver_outbox(engines.web, **(_smtp(1) | {"transport": "maildir", "mail_dir": mail}))

    assert report.sent == 1 and _row(engines.web, email_id).status == "sent"
    assert list((mail / "new").iterdir()) == [] and len(list((mail / "cur").iterdir())) == 1
    assert list((mail / "tmp").iterdir()) == []


def test_smtp_delivery_sends_text_and_html_one_connection_per_batch(
    engines: Any, smtp_server: tuple[Recorder, int]
) -> None:
    recorder, port = smtp_server
    ids = [_queue(engines.web, f"new_user:{n}", to=f"user{n}@example.com") for n in range(3)]

    report = deliver_outbox(engines.web, **_smtp(port, batch_size=2))

    assert (report.sent, report.failed, report.retried, report.remaining) == (3, 0, 0, 0)
    # Batches of 2 and 1, delivered side by side: two connections, each in email_id order.
    by_connection: dict[Any, list[str]] = {}
    for peer, recipients in zip(recorder.peers, recorder.recipients, strict=True):
        by_connection.setdefault(peer, []).extend(recipients)
    assert sorted(by_connection.values()) == [["user0@example.com", "user1@example.com"], ["user2@example.com"]]
    message = next(m for m in recorder.messages if m["To"] == "user0@example.com")
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert "set your password" in message.get_body(("plain",)).get_content()
    assert {m["Message-ID"] for m in recorder.messages} == {message_id(f"new_user:{n}", FROM) for n in range(3)}
    assert all(_row(engines.web, i).status == "sent" for i in ids if i is not None)


def test_e1_pipelined_smtp_keeps_each_message_whole_and_refusals_per_email(
    engines: Any, pipelining_smtp_server: tuple[PipeliningRecorder, int]
) -> None:
    """A server offering PIPELINING gets MAIL, RCPT and DATA together; content, dots and refusals stay exact."""
    recorder, port = pipelining_smtp_server
    with engines.web.begin() as conn:
        dotted = queue_email(conn, template="user_debtor_new_user", to_address="dot@example.com",
                             context=SAMPLE_CONTEXTS["user_debtor_new_user"] | {"name": "Ann\n.Citizen"},
                             dedupe_key="new_user:dotted", templates_dir=None)
    refused = _queue(engines.web, "new_user:refused", to="nobody@example.com")
    plain = _queue(engines.web, "new_user:plain", to="ann@example.com")

    report = deliver_outbox(engines.web, **_smtp(port, max_attempts=1))

    assert (report.sent, report.failed, report.retried, report.remaining) == (2, 1, 0, 0)
    assert sorted(r for rs in recorder.recipients for r in rs) == ["ann@example.com", "dot@example.com"]
    assert len(set(recorder.peers)) == 1  # one batch, one connection
    received = next(m for m in recorder.messages if m["To"] == "dot@example.com")
    assert "\n.Citizen" in received.get_body(("plain",)).get_content()  # the leading dot travelled unstuffed
    assert received["Message-ID"] == message_id("new_user:dotted", FROM)
    assert dotted is not None and refused is not None and plain is not None
    assert _row(engines.web, dotted).status == _row(engines.web, plain).status == "sent"
    row = _row(engines.web, refused)
    assert row.status == "failed" and "550" in row.last_error and "Mailbox unavailable" in row.last_error


# Delivery in a process of its own, so that the test can kill it in the middle of a batch.
_DELIVER_IN_A_CHILD = """
import sys
from pathlib import Path
import sqlalchemy as sa
from userdebtor_pipeline.email import deliver_outbox
deliver_outbox(sa.create_engine(sys.argv[1]), transport="smtp", from_address=sys.argv[3], smtp_host="127.0.0.1",
               smtp_port=int(sys.argv[2]), mail_dir=Path("/nonexistent"), workers=1)
"""


class _KillsTheDelivererAfter(PipeliningRecorder):
    """Accepts `accepted` messages; with the next one in hand it kills the delivering process, then answers."""

    def __init__(self, accepted: int) -> None:
        super().__init__()
        self.accepted = accepted
        self.deliverer: subprocess.Popen[bytes] | None = None
        self.killed = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if len(self.messages) == self.accepted and not self.killed and self.deliverer is not None:
            os.kill(self.deliverer.pid, signal.SIGKILL)
            self.deliverer.wait()
            self.killed = True
            return "451 4.3.0 Try again later"
        return await super().handle_DATA(server, session, envelope)


def test_e1_a_batch_killed_after_the_server_accepted_some_sends_only_the_rest(engines: Any) -> None:
    """E1: killed in the middle of a batch, the batch's marks roll back, yet the emails the server had accepted
    are not offered again: the rerun marks them sent and delivers only the others."""
    ids = [_queue(engines.web, f"new_user:{n}", to=f"user{n}@example.com") for n in range(6)]
    handler = _KillsTheDelivererAfter(accepted=3)
    with serving(handler) as port:
        url = engines.web.url.render_as_string(hide_password=False)
        handler.deliverer = subprocess.Popen([sys.executable, "-c", _DELIVER_IN_A_CHILD, url, str(port), FROM])
        assert handler.deliverer.wait(timeout=120) == -signal.SIGKILL
        with engines.web.connect() as conn:  # the batch's transaction died with the process, its journal did not
            assert conn.execute(sa.text("SELECT count(*) FROM web.email_outbox WHERE status = 'sent'")).scalar() == 0
            assert conn.execute(sa.text("SELECT count(*) FROM userdebtor.email_accepted")).scalar() == 3

        report = deliver_outbox(engines.web, **_smtp(port))

    assert (report.recovered, report.sent, report.remaining) == (3, 3, 0)
    assert sorted(m["To"] for m in handler.messages) == [f"user{n}@example.com" for n in range(6)]  # each once
    assert all(_row(engines.web, i).status == "sent" for i in ids if i is not None)
    with engines.web.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM userdebtor.email_accepted")).scalar() == 0


def test_a_sent_email_is_not_sent_again(engines: Any, smtp_server: tuple[Recorder, int]) -> None:
    recorder, port = smtp_server
    _queue(engines.web, "new_user:1")
    assert deliver_outbox(engines.web, **_smtp(port)).sent == 1
    again = deliver_outbox(engines.web, **_smtp(port))
    assert (again.sent, again.remaining) == (0, 0)
    assert len(recorder.messages) == 1

    # The same event queued again after sending is still the one email.
    assert _queue(engines.web, "new_user:1") is None
    assert deliver_outbox(engines.web, **_smtp(port)).sent == 0
    assert len(recorder.messages) == 1


def test_refused_email_is_retried_then_failed_with_last_error(
    engines: Any, refusing_smtp_server: tuple[Refuser, int]
) -> None:
    _, port = refusing_smtp_server
    email_id = _queue(engines.web, "new_user:1", to="nobody@example.com")
    assert email_id is not None
    settings = _smtp(port, max_attempts=3, smtp_password=SMTP_PASSWORD)

    for attempt in (1, 2):
        report = deliver_outbox(engines.web, **settings)
        assert (report.sent, report.retried, report.failed, report.remaining) == (0, 1, 0, 1)
        row = _row(engines.web, email_id)
        assert (row.status, row.attempts) == ("queued", attempt)
        assert "550" in row.last_error and "Mailbox unavailable" in row.last_error

    report = deliver_outbox(engines.web, **settings)
    assert (report.sent, report.retried, report.failed, report.remaining) == (0, 0, 1, 0)
    row = _row(engines.web, email_id)
    assert (row.status, row.attempts, row.sent_at) == ("failed", 3, None)
    assert "550" in row.last_error and SMTP_PASSWORD not in row.last_error

    # A failed email is left alone from then on.
    report = deliver_outbox(engines.web, **settings)
    assert (report.sent, report.retried, report.failed) == (0, 0, 0)
    assert _row(engines.web, email_id).attempts == 3


def test_unreachable_smtp_server_spends_one_attempt_and_stops(engines: Any) -> None:
    ids = [_queue(engines.web, f"new_user:{n}") for n in range(3)]
    report = deliver_outbox(engines.web, **_smtp(free_port()))  # nothing listens there
    assert (report.sent, report.retried, report.remaining) == (0, 1, 3)
    assert report.transport_error and "Connection" in report.transport_error
    attempts = [_row(engines.web, i).attempts for i in ids if i is not None]
    assert attempts == [1, 0, 0]


def test_two_deliverers_at_once_send_each_email_once(engines: Any, tmp_path: Path) -> None:
    for n in range(40):
        _queue(engines.web, f"new_user:{n}", to=f"user{n}@example.com")
    mail = tmp_path / "mail"
    reports = []

    def run() -> None:
        reports.append(
            deliver_outbox(
                engines.web, **(_smtp(1) | {"transport": "maildir", "mail_dir": mail, "batch_size": 7})
            )
        )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.sent for r in reports) == 40
    recipients = sorted(
        message_from_bytes(path.read_bytes(), policy=policy.default)["To"]
        for path in (mail / "new").iterdir()
    )
    assert recipients == sorted(f"user{n}@example.com" for n in range(40))
