"""Sending e-mail: the SMTP settings from the environment and handing a message to the mail server.

What belongs here: the one place that knows how this installation talks to its mail server, for every
message the warehouse sends (the coordinators' outbox, ``outbox.py``; the data team's alerts can use the same).
Who receives what, and the wording, belong to the callers. No Dagster imports.

Configuration (environment only; the password never goes into the repository):

- ``ZI_SMTP_HOST`` switches sending on (unset: messages are only written, nothing is sent);
- ``ZI_SMTP_PORT`` (default 25, or 587 with STARTTLS), ``ZI_SMTP_STARTTLS=1``;
- ``ZI_SMTP_USER`` and ``ZI_SMTP_PASSWORD`` when the server wants a login;
- ``ZI_MAIL_FROM``: the sender address (required when ``ZI_SMTP_HOST`` is set); ``ZI_MAIL_REPLY_TO``: where
  replies go (optional, e.g. the data team's mailbox).
"""

from __future__ import annotations

import os
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Mapping

SMTP_HOST_ENV = "ZI_SMTP_HOST"
SMTP_PORT_ENV = "ZI_SMTP_PORT"
SMTP_USER_ENV = "ZI_SMTP_USER"
SMTP_PASSWORD_ENV = "ZI_SMTP_PASSWORD"
SMTP_STARTTLS_ENV = "ZI_SMTP_STARTTLS"
FROM_ENV = "ZI_MAIL_FROM"
REPLY_TO_ENV = "ZI_MAIL_REPLY_TO"

#: Seconds to wait for the mail server: a hanging server must not hold up a run for long.
SMTP_TIMEOUT_SECONDS = 30


class MailConfigError(ValueError):
    """Sending is switched on (``ZI_SMTP_HOST``) but the configuration is incomplete or wrong."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    reply_to: str | None = None
    user: str | None = None
    password: str | None = None
    starttls: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SmtpSettings | None":
        """The settings, or None when sending is not configured (``ZI_SMTP_HOST`` unset)."""
        env = os.environ if environ is None else environ
        host = env.get(SMTP_HOST_ENV, "").strip()
        if not host:
            return None
        starttls = env.get(SMTP_STARTTLS_ENV, "").strip().lower() in ("1", "true", "ja", "yes")
        port_text = env.get(SMTP_PORT_ENV, "").strip() or ("587" if starttls else "25")
        try:
            port = int(port_text)
        except ValueError:
            raise MailConfigError(f"{SMTP_PORT_ENV}={port_text!r} ist keine Portnummer.") from None
        sender = env.get(FROM_ENV, "").strip()
        if not sender:
            raise MailConfigError(f"{SMTP_HOST_ENV} ist gesetzt, es fehlt aber {FROM_ENV} (Absenderadresse).")
        return cls(host=host, port=port, sender=sender, reply_to=env.get(REPLY_TO_ENV, "").strip() or None,
                   user=env.get(SMTP_USER_ENV, "").strip() or None, password=env.get(SMTP_PASSWORD_ENV) or None,
                   starttls=starttls)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def new_message(subject: str, sender: str, to: list[str], text: str, reply_to: str | None = None) -> EmailMessage:
    """A plain-text message (UTF-8, encoded as the standard requires) with date and message id."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    if reply_to:
        message["Reply-To"] = reply_to
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    return message


def send(message: EmailMessage, settings: SmtpSettings, recipients: list[str] | None = None) -> None:
    """Hand the message to the mail server (STARTTLS and login when configured); raises on any refusal.

    ``recipients`` default to the message's To header.
    """
    with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.user:
            smtp.login(settings.user, settings.password or "")
        refused = smtp.send_message(message, from_addr=settings.sender, to_addrs=recipients)
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)
