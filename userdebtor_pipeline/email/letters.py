"""What one outbox row becomes on its way out (rule E1): a Letter with its envelope and the message's bytes.

Nearly every email is plain ASCII headers with a text body and an HTML alternative. Its bytes are written
here directly: with the standard library's builder and generator, delivery took 1.0 ms of CPU an email, which
held it under 1,000 emails/s on two cores; written directly, 0.25 ms. Anything else (a non-ASCII name or
address, a header too long for one line) takes the standard library, which encodes and folds it properly.
The two give the same message: a test parses both and compares them.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import io
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

# RFC 5322's recommended line length: a longer header is folded, by the standard library.
_HEADER_LINE = 78


@dataclass(frozen=True)
class Letter:
    """One outbox row as it goes out: its id, template (for logs), envelope and message."""

    email_id: int
    template: str
    dedupe_key: str
    sender: str = ""
    recipients: tuple[str, ...] = ()
    content: bytes = b""  # the whole message with CRLF line ends, as it goes over SMTP
    message: Message | None = None  # kept where the envelope is not ASCII: smtplib then negotiates SMTPUTF8

    @property
    def file_content(self) -> bytes:
        """The message as a Maildir file holds it: LF line ends."""
        return self.content.replace(b"\r\n", b"\n")


def message_id(dedupe_key: str, from_address: str) -> str:
    """The same Message-ID for every delivery of one event, so a resend is recognisable."""
    digest = hashlib.sha256(dedupe_key.encode("utf-8")).hexdigest()[:32]
    _, address = email.utils.parseaddr(from_address)
    domain = address.rpartition("@")[2] or "localhost"
    return f"<{digest}.userdebtor@{domain}>"


def _headers(row: Any, from_address: str) -> dict[str, str]:
    return {
        "From": from_address,
        "To": row.to_address,
        "Subject": row.subject,
        "Date": email.utils.formatdate(localtime=True),
        "Message-ID": message_id(row.dedupe_key, from_address),
        "X-Userdebtor-Template": row.template,
    }


def _one_line_ascii(headers: dict[str, str]) -> bool:
    return all(value.isascii() and "\n" not in value and "\r" not in value and len(name) + 2 + len(value)
               <= _HEADER_LINE for name, value in headers.items())


def build_message(row: Any, from_address: str) -> Message:
    """The MIME message of one outbox row, by the standard library: plain text, with the HTML as an alternative
    when there is one. Plain ASCII headers take the compat32 builder; anything else the modern one, which
    encodes international names and addresses properly."""
    headers = _headers(row, from_address)
    if all(value.isascii() and "\n" not in value and "\r" not in value for value in headers.values()):
        message: Message = MIMEText(row.body_text, "plain", "utf-8")
        if row.body_html:
            message = MIMEMultipart("alternative", _subparts=[message, MIMEText(row.body_html, "html", "utf-8")])
    else:
        message = EmailMessage()
        message.set_content(row.body_text)
        if row.body_html:
            message.add_alternative(row.body_html, subtype="html")
    for name, value in headers.items():
        message[name] = value
    return message


def _part(subtype: str, text: str) -> bytes:
    body = base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n")
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n").encode("ascii") + body


def _written(headers: dict[str, str], body_text: str, body_html: str | None, boundary: str) -> bytes:
    """The message compat32 would give for one-line ASCII headers, written directly. Base64 bodies never hold
    "=_", so a boundary starting with it cannot occur inside a part."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("ascii")
    if not body_html:
        return _part("plain", body_text).replace(b"\r\n\r\n", b"\r\n" + head + b"\r\n", 1)
    start = f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\nMIME-Version: 1.0\r\n'.encode("ascii")
    dash = f"--{boundary}\r\n".encode("ascii")
    return b"".join([start, head, b"\r\n", dash, _part("plain", body_text), b"\r\n", dash, _part("html", body_html),
                     b"\r\n", f"--{boundary}--\r\n".encode("ascii")])


def _flattened(message: Message) -> bytes:
    """The message as smtplib.send_message puts it on the wire: CRLF line ends."""
    with io.BytesIO() as out:
        BytesGenerator(out, policy=message.policy.clone(linesep="\r\n")).flatten(message, linesep="\r\n")
        return out.getvalue()


def letter_of(row: Any, from_address: str) -> Letter:
    """One outbox row (email_id, template, to_address, subject, body_text, body_html, dedupe_key) as a Letter.

    Raises what the standard library raises for a message it cannot write (an EMAIL_ERRORS of transports)."""
    headers = _headers(row, from_address)
    sender = email.utils.getaddresses([from_address])[0][1]
    recipients = tuple(address for _, address in email.utils.getaddresses([row.to_address]))
    if _one_line_ascii(headers):
        boundary = f"=_{hashlib.sha256(row.dedupe_key.encode('utf-8')).hexdigest()[:32]}"
        content = _written(headers, row.body_text, row.body_html, boundary)
        return Letter(row.email_id, row.template, row.dedupe_key, sender, recipients, content)
    message = build_message(row, from_address)
    international = None if (sender + "".join(recipients)).isascii() else message
    return Letter(row.email_id, row.template, row.dedupe_key, sender, recipients, _flattened(message), international)
