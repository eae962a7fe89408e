"""A real SMTP server on loopback (aiosmtpd) for the tests: one that keeps every message, one that refuses."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller


class Recorder:
    """Accepts every message and keeps it, with the client port of the connection it came on."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.peers: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
        self.recipients.append(list(envelope.rcpt_tos))
        self.peers.append(session.peer)
        return "250 OK"


class PipeliningRecorder(Recorder):
    """A Recorder that offers PIPELINING (RFC 2920), as Postfix and most relays do (aiosmtpd reads the commands
    in turn); it refuses the mailbox `nobody@...`, as a server does for one that does not exist."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


class Refuser:
    """Refuses every recipient, as a server does for a mailbox that does not exist."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        return "550 5.1.1 Mailbox unavailable"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(handler: Any) -> Iterator[int]:
    """A real SMTP server on loopback with this handler, for the block; its port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _serve(handler: Any) -> Iterator[tuple[Any, int]]:
    with serving(handler) as port:
        yield handler, port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    yield from _serve(Recorder())


@pytest.fixture
def pipelining_smtp_server() -> Iterator[tuple[PipeliningRecorder, int]]:
    yield from _serve(PipeliningRecorder())


@pytest.fixture
def refusing_smtp_server() -> Iterator[tuple[Refuser, int]]:
    yield from _serve(Refuser())
