"""A local SMTP server for tests (aiosmtpd on a free port) that keeps every message it receives.

Usage::

    from smtp_server import smtp_server   # tests/ is on sys.path under pytest

    with smtp_server() as smtp:
        env = smtp.env(to="team@example.org")   # ZI_ALERT_* variables pointing at this server
        ...
        [message] = smtp.messages             # email.message.EmailMessage, as received
        text = body_of(message)               # its text, with \n line ends
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from conftest import free_port


@dataclass
class _Collector:
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    collector: _Collector

    @property
    def messages(self) -> list[EmailMessage]:
        with self.collector.lock:
            return list(self.collector.messages)

    @property
    def recipients(self) -> list[list[str]]:
        with self.collector.lock:
            return list(self.collector.recipients)

    def env(self, to: str = "datenteam@example.org", sender: str = "zi-warehouse@example.org") -> dict[str, str]:
        return {
            "ZI_ALERT_SMTP_HOST": self.host,
            "ZI_ALERT_SMTP_PORT": str(self.port),
            "ZI_ALERT_FROM": sender,
            "ZI_ALERT_TO": to,
        }

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages once at least ``count`` arrived (or whatever arrived when the time is up)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


def body_of(message: EmailMessage) -> str:
    """The text of a received message with Python line ends (SMTP transmits CRLF)."""
    return message.get_content().replace("\r\n", "\n")


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    collector = _Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(controller.hostname, controller.port, collector)
    finally:
        controller.stop()
