"""Alerts: a failed or blocked run tells the data team by e-mail, in German, once.

What belongs here, with no Dagster imports: the SMTP settings from the environment, the German message
(what failed, the data directory, the run's link in the Dagster UI), sending it, and the record that makes
sure one run is reported once. Collecting the facts of a run from Dagster's event log and the sensor that
calls this are in ``dagster_zi/alerts.py``.

Configuration (environment only; the password never goes into the repository, see ``.env.example``):
``ZI_ALERT_SMTP_HOST`` switches alerts on; ``ZI_ALERT_SMTP_PORT`` (default 25, or 587 with STARTTLS),
``ZI_ALERT_FROM``, ``ZI_ALERT_TO`` (comma-separated), optional ``ZI_ALERT_SMTP_USER`` and
``ZI_ALERT_SMTP_PASSWORD``, ``ZI_ALERT_SMTP_STARTTLS=1``.

Once per run: a failed ``zi build`` reports its own run at once (the daemon may not be running), and the
daemon's failure sensor sees every run of the instance, ``zi build``'s included. Whoever comes first claims
the run by creating ``<record dir>/<run id>.json`` exclusively (an atomic file creation, so two processes
never both send); the file then records what was sent, to whom, when, or why sending failed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import smtplib
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from zi_warehouse.german import format_datetime

#: Environment variables of the alert e-mail (documented in .env.example and docs/runbook.md).
SMTP_HOST_ENV = "ZI_ALERT_SMTP_HOST"
SMTP_PORT_ENV = "ZI_ALERT_SMTP_PORT"
SMTP_USER_ENV = "ZI_ALERT_SMTP_USER"
SMTP_PASSWORD_ENV = "ZI_ALERT_SMTP_PASSWORD"
SMTP_STARTTLS_ENV = "ZI_ALERT_SMTP_STARTTLS"
FROM_ENV = "ZI_ALERT_FROM"
TO_ENV = "ZI_ALERT_TO"

#: Seconds to wait for the mail server (a hanging server must not hold up the build's exit or the sensor).
SMTP_TIMEOUT_SECONDS = 30
#: Lines of an error message quoted in the mail (the whole stack trace is in the Dagster UI).
ERROR_LINES = 6


class AlertConfigError(ValueError):
    """Alerts are switched on (``ZI_ALERT_SMTP_HOST``) but their configuration is incomplete or wrong."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    starttls: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SmtpSettings | None:
        """The settings, or None when alerts are not configured (``ZI_ALERT_SMTP_HOST`` unset)."""
        env = os.environ if environ is None else environ
        host = env.get(SMTP_HOST_ENV, "").strip()
        if not host:
            return None
        starttls = env.get(SMTP_STARTTLS_ENV, "").strip().lower() in ("1", "true", "ja", "yes")
        port_text = env.get(SMTP_PORT_ENV, "").strip() or ("587" if starttls else "25")
        try:
            port = int(port_text)
        except ValueError:
            raise AlertConfigError(f"{SMTP_PORT_ENV}={port_text!r} ist keine Portnummer.") from None
        sender = env.get(FROM_ENV, "").strip()
        recipients = tuple(r.strip() for r in env.get(TO_ENV, "").replace(";", ",").split(",") if r.strip())
        missing = [name for name, value in ((FROM_ENV, sender), (TO_ENV, recipients)) if not value]
        if missing:
            raise AlertConfigError(
                f"{SMTP_HOST_ENV} ist gesetzt, es fehlt aber: {', '.join(missing)} (Absender und Empfänger der "
                "Benachrichtigungen)."
            )
        return cls(
            host=host,
            port=port,
            sender=sender,
            recipients=recipients,
            user=env.get(SMTP_USER_ENV, "").strip() or None,
            password=env.get(SMTP_PASSWORD_ENV) or None,
            starttls=starttls,
        )


@dataclass(frozen=True)
class FailedStep:
    key: str
    error: str  # the error message as Dagster recorded it


@dataclass(frozen=True)
class FailedCheck:
    asset: str  # e.g. raw_climate/climate__stations
    name: str  # e.g. climate_station_list_parses
    description: str  # the check's German description (what it guards)
    blocking: bool
    details: dict[str, str] = field(default_factory=dict)  # the evaluation's metadata, as text


@dataclass
class RunFailure:
    """What the data team needs to know about one failed run."""

    run_id: str
    job_name: str
    launched_by: str  # German, e.g. "zi build", "Sensor landing_sensor (…)", "Zeitplan daily_warehouse_build"
    data_dir: Path
    run_url: str
    failed_steps: list[FailedStep] = field(default_factory=list)
    failed_checks: list[FailedCheck] = field(default_factory=list)
    run_error: str = ""  # the run's own failure message when no step failed (e.g. its process was killed)
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    published: bool | None = None  # build job only: did the published copy change in this run

    @property
    def blocked(self) -> bool:
        return any(check.blocking for check in self.failed_checks)

    def headline(self) -> str:
        """What failed, in a few words (the subject line)."""
        blocking = [c for c in self.failed_checks if c.blocking]
        if blocking:
            more = f" und {len(blocking) - 1} weitere" if len(blocking) > 1 else ""
            return f"Build blockiert: Prüfung {blocking[0].name}{more} fehlgeschlagen"
        if self.failed_steps:
            more = f" und {len(self.failed_steps) - 1} weitere" if len(self.failed_steps) > 1 else ""
            return f"Lauf fehlgeschlagen: Schritt {self.failed_steps[0].key}{more}"
        return "Lauf fehlgeschlagen"


def _quote(text: str, indent: str = "    ") -> str:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) > ERROR_LINES:
        lines = lines[:ERROR_LINES] + ["… (vollständig im Dagster-UI)"]
    return "\n".join(indent + line for line in lines)


def message_text(failure: RunFailure) -> str:
    """The German body of the alert."""
    blocked = [c for c in failure.failed_checks if c.blocking]
    other_checks = [c for c in failure.failed_checks if not c.blocking]
    state = "wurde durch eine blockierende Prüfung angehalten" if blocked else "ist fehlgeschlagen"
    parts = [
        "Guten Tag,",
        "",
        f"der Dagster-Lauf {failure.run_id} (Job {failure.job_name}, gestartet von {failure.launched_by}) {state}.",
    ]
    if failure.published is True:
        parts.append("Das Warehouse wurde noch veröffentlicht; fehlgeschlagen ist ein nachgelagerter Schritt.")
    elif failure.published is False:
        parts.append("Nichts wurde veröffentlicht: die bisher veröffentlichte Fassung bleibt unverändert.")
    for title, checks in (("Blockierende Prüfung fehlgeschlagen", blocked), ("Prüfung fehlgeschlagen", other_checks)):
        if not checks:
            continue
        parts += ["", f"{title}:"]
        for check in checks:
            parts.append(f"  - {check.asset}: {check.name}")
            if check.description:
                parts.append(f"    {check.description}")
            for key, value in check.details.items():
                parts.append(_quote(f"{key}: {value}"))
    if failure.failed_steps:
        parts += ["", "Fehlgeschlagener Schritt:" if len(failure.failed_steps) == 1 else "Fehlgeschlagene Schritte:"]
        for step in failure.failed_steps:
            parts.append(f"  - {step.key}")
            if step.error:
                parts.append(_quote(step.error))
    if failure.run_error and not failure.failed_steps:
        parts += ["", "Fehler des Laufs:", _quote(failure.run_error)]
    parts += [
        "",
        f"Datenverzeichnis: {failure.data_dir}",
        f"Lauf im Dagster-UI: {failure.run_url}",
    ]
    if failure.started_at:
        parts.append(
            f"Gestartet: {format_datetime(failure.started_at)}"
            + (f", beendet: {format_datetime(failure.ended_at)}" if failure.ended_at else "")
        )
    parts += [
        "",
        "Was zu tun ist, steht in docs/runbook.md (Abschnitt „When something fails“).",
        "",
        f"Diese Nachricht hat das ZI Warehouse automatisch gesendet ({socket.gethostname()}).",
    ]
    return "\n".join(parts) + "\n"


def build_message(failure: RunFailure, settings: SmtpSettings) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[ZI Warehouse] {failure.headline()} ({failure.data_dir.name})"
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message["X-ZI-Run-Id"] = failure.run_id
    message.set_content(message_text(failure))  # UTF-8; umlauts encoded as the standard requires
    return message


def send(message: EmailMessage, settings: SmtpSettings) -> None:
    """Hand the message to the mail server (STARTTLS and login when configured)."""
    with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.user:
            smtp.login(settings.user, settings.password or "")
        smtp.send_message(message, from_addr=settings.sender, to_addrs=list(settings.recipients))


def record_path(record_dir: Path, run_id: str) -> Path:
    return record_dir / f"{run_id}.json"


def claim(record_dir: Path, run_id: str, by: str) -> bool:
    """Take the right to report ``run_id``; False when another process (or an earlier call) already has it."""
    record_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(record_path(record_dir, run_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"run_id": run_id, "by": by, "status": "claimed", "at": _now()}, fh, ensure_ascii=False)
    return True


def read_record(record_dir: Path, run_id: str) -> dict | None:
    try:
        return json.loads(record_path(record_dir, run_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_record(record_dir: Path, run_id: str, data: dict) -> None:
    target = record_path(record_dir, run_id)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, target)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


#: What the callers say when alerts are off (nothing is claimed then, so nothing is recorded as sent).
NOT_CONFIGURED = f"Keine E-Mail-Benachrichtigung: {SMTP_HOST_ENV} ist nicht gesetzt."


def notify(failure: RunFailure, record_dir: Path, by: str, settings: SmtpSettings) -> str:
    """Report a failed run once; returns a German sentence saying what happened (for logs and the terminal).

    A sending error is recorded in the claim file and raised (the caller shows it: the sensor's tick, the
    build's summary).
    """
    if not claim(record_dir, failure.run_id, by):
        earlier = read_record(record_dir, failure.run_id) or {}
        return (
            f"Benachrichtigung zu Lauf {failure.run_id} bereits übernommen "
            f"({earlier.get('by', 'unbekannt')}, {earlier.get('status', '?')})."
        )
    message = build_message(failure, settings)
    record = {
        "run_id": failure.run_id,
        "by": by,
        "subject": message["Subject"],
        "to": list(settings.recipients),
        "host": f"{settings.host}:{settings.port}",
    }
    try:
        send(message, settings)
    except (OSError, smtplib.SMTPException) as exc:
        _write_record(record_dir, failure.run_id, {**record, "status": "failed", "at": _now(), "error": str(exc)})
        raise RuntimeError(
            f"Benachrichtigung zu Lauf {failure.run_id} nicht gesendet ({settings.host}:{settings.port}): {exc}"
        ) from exc
    _write_record(record_dir, failure.run_id, {**record, "status": "sent", "at": _now()})
    return f"Benachrichtigung gesendet an {', '.join(settings.recipients)}: {message['Subject']}"


def forget(record_dir: Path, run_id: str) -> None:
    """Remove the record of a run (run retention deletes the run itself)."""
    record_path(record_dir, run_id).unlink(missing_ok=True)
