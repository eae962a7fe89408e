"""E1: the bytes written directly for a plain email are the message the standard library builds."""

from __future__ import annotations

from email import message_from_bytes, policy
from types import SimpleNamespace
from typing import Any

import pytest

from userdebtor_pipeline.email.letters import _flattened, build_message, letter_of

FROM = "Example Shop <shop@example.com>"


def _row(**values: object) -> SimpleNamespace:
    row = {"email_id": 7, "template": "user_debtor_new_user", "to_address": "ann@example.com",
           "subject": "Welcome to Example Shop", "body_text": "Hello Ann,\n.a line with a dot\nÄnne – ünïcode\n",
           "body_html": "<p>Hello <b>Ann</b> – ünïcode</p>", "dedupe_key": "new_user:7"}
    return SimpleNamespace(**(row | values))


def _parsed(content: bytes) -> Any:  # an EmailMessage
    assert b"\r\n" in content and b"\n" not in content.replace(b"\r\n", b"")  # CRLF line ends only
    return message_from_bytes(content, policy=policy.default)


def _same(direct: bytes, standard: bytes) -> None:
    ours, theirs = _parsed(direct), _parsed(standard)
    for name in ("From", "To", "Subject", "Message-ID", "X-Userdebtor-Template", "MIME-Version"):
        assert ours[name] == theirs[name], name
    assert ours.get_content_type() == theirs.get_content_type()
    assert [p.get_content_type() for p in ours.walk()] == [p.get_content_type() for p in theirs.walk()]
    for kind in (("plain",), ("html",)):
        mine, standard_part = ours.get_body(kind), theirs.get_body(kind)
        assert (mine is None) == (standard_part is None)
        if mine is not None and standard_part is not None:
            assert mine.get_content() == standard_part.get_content()


@pytest.mark.parametrize("html", ["<p>Hello <b>Ann</b> – ünïcode</p>", None])
def test_e1_a_plain_email_written_directly_is_the_standard_message(html: str | None) -> None:
    row = _row(body_html=html)
    letter = letter_of(row, FROM)
    assert letter.message is None  # the direct path
    assert (letter.sender, letter.recipients) == ("shop@example.com", ("ann@example.com",))
    _same(letter.content, _flattened(build_message(row, FROM)))
    assert all(len(line) <= 78 for line in letter.content.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))
    assert letter.file_content == letter.content.replace(b"\r\n", b"\n")


@pytest.mark.parametrize("values", [
    {"subject": "Your account at Example Shop is ready: " + "a long subject line " * 4},  # folded
    {"subject": "Willkommen, Jürgen"},  # encoded
    {"to_address": "Jürgen Groß <jurgen@example.com>"},  # an encoded name, ASCII envelope
])
def test_e1_headers_that_need_encoding_or_folding_take_the_standard_library(values: dict[str, str]) -> None:
    row = _row(**values)
    letter = letter_of(row, FROM)
    assert letter.message is None  # an ASCII envelope: sent as bytes either way
    standard = _flattened(build_message(row, FROM))
    assert _parsed(letter.content)["Subject"] == _parsed(standard)["Subject"] == row.subject
    head = letter.content.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and all(len(line) <= 78 for line in head.split(b"\r\n"))


def test_e1_an_international_address_keeps_the_message_for_smtputf8() -> None:
    letter = letter_of(_row(to_address="jürgen@exämple.com"), FROM)
    assert letter.message is not None and letter.recipients == ("jürgen@exämple.com",)


@pytest.mark.parametrize("values", [
    {"to_address": "ann@example.com\r\nBcc: thief@example.com"},
    {"subject": "Welcome\nBcc: thief@example.com"},
])
def test_e1_a_line_break_in_an_address_or_subject_never_adds_a_header(values: dict[str, str]) -> None:
    """A typed address or a rendered subject with a line break is refused (the email fails on its own), never
    written as a header of its own: the direct path leaves it to the standard library, which refuses it."""
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        letter_of(_row(**values), FROM)
