"""The coordinators' outbox: after each run, per municipality, one German e-mail about its new deliveries.

What belongs here: deciding which deliveries a municipality has not been told about yet, the wording of the
e-mail (per file what was loaded and rejected, by the rules' German labels), its attachments (the feedback
workbook of a forecast, the rejected rows of other files as CSV), writing it as a standard MIME message into
``<data>/outbox/`` and sending it when SMTP is configured, and the record of what was written and sent when
(``<data>/outbox/record.jsonl``), so nobody gets the same feedback twice. No Dagster imports; the asset is
``dagster_zi/forecasts.py``. Documented in docs/outbox.md.

The mail server is the one the alerts use: its settings (``ZI_ALERT_SMTP_*``, ``ZI_ALERT_FROM``) and the sending
live in one place, ``alerts.py``; here only the recipients differ (the municipality's coordinators).

A delivery is one landed file in one version (source family, file, content hash) whose ledger row names a
municipality; it goes into exactly one message. A message that could not be sent yet (no SMTP configured,
no address for the municipality, the server refused) stays in the outbox and is sent by a later run.

Coordinator addresses live outside the repository: ``ZI_COORDINATOR_ADDRESSES`` names a CSV file with the
columns ``municipality`` (key or name, matched like every municipality name) and ``email`` (one address, or
several separated by ``;``); a municipality may have several rows.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import os
import re
import smtplib
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path

import duckdb

from zi_warehouse import alerts, config, warehouse
from zi_warehouse.forecasts import feedback
from zi_warehouse.german import count_of, format_number, format_quarter
from zi_warehouse.reference import match_municipality, municipality_by_key

ADDRESSES_ENV = "ZI_COORDINATOR_ADDRESSES"
RECORD_FILE = "record.jsonl"
#: Families whose files a municipality delivers itself, with the name a coordinator knows them by.
FAMILIES = {"forecasts": "Quartalsprognose", "trees": "Baumkataster", "surfaces": "Flächendaten"}
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


class OutboxConfigError(ValueError):
    """The coordinator address file is named but missing or unreadable."""


@dataclass
class Delivery:
    """One landed file of a municipality as the ledger records it, with its rejections."""

    family: str
    source_file: str
    file_name: str
    file_hash: str
    municipality_key: str
    period: str | None
    outcome: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    error_message: str | None
    rejections: list[dict] = field(default_factory=list)  # raw.rejected_rows of the file

    @property
    def key(self) -> dict:
        return {"family": self.family, "source_file": self.source_file, "file_hash": self.file_hash}

    @property
    def to_resend(self) -> bool:
        """Not loaded for a reason the sender can fix (a copy of a delivery already loaded asks for nothing)."""
        return self.outcome not in ("loaded", "duplicate")

    @property
    def outcome_shown(self) -> str:
        return feedback.OUTCOME_DE[self.outcome]


@dataclass
class OutboxResult:
    written: list[Path] = field(default_factory=list)
    sent: list[Path] = field(default_factory=list)
    pending: list[Path] = field(default_factory=list)  # not sent yet (see ``why_pending``)
    failed: list[str] = field(default_factory=list)  # German: what the mail server said
    why_pending: Counter = field(default_factory=Counter)

    def as_metadata(self) -> dict:
        return {
            "messages_written": len(self.written),
            "messages_sent": len(self.sent),
            "messages_pending": len(self.pending),
            "send_errors": len(self.failed),
            "pending_because": ", ".join(f"{k}: {n}" for k, n in sorted(self.why_pending.items())) or "–",
        }


# --- the record --------------------------------------------------------------------------------------------
def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def read_record(outbox_dir: Path) -> list[dict]:
    path = outbox_dir / RECORD_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _append(outbox_dir: Path, event: dict) -> None:
    outbox_dir.mkdir(parents=True, exist_ok=True)
    with open(outbox_dir / RECORD_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"at": _now(), **event}, ensure_ascii=False) + "\n")


def reported(record: list[dict]) -> set[tuple[str, str, str]]:
    """The deliveries already put into a message (sent or waiting to be sent)."""
    return {
        (f["family"], f["source_file"], f["file_hash"]) for e in record if e["event"] == "written" for f in e["files"]
    }


def unsent(record: list[dict]) -> dict[str, dict]:
    """Messages written but not yet sent: message file name -> its 'written' event."""
    written = {e["message"]: e for e in record if e["event"] == "written"}
    for e in record:
        if e["event"] in ("sent", "discarded"):
            written.pop(e["message"], None)
    return written


# --- addresses ---------------------------------------------------------------------------------------------
def coordinator_addresses(environ=None) -> dict[str, list[str]] | None:
    """municipality key -> addresses from the file ``ZI_COORDINATOR_ADDRESSES`` names; None when unset."""
    env = os.environ if environ is None else environ
    name = env.get(ADDRESSES_ENV, "").strip()
    if not name:
        return None
    path = Path(name).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise OutboxConfigError(f"{ADDRESSES_ENV}={name}: Adressdatei nicht lesbar ({exc.strerror}).") from None
    delimiter = ";" if text.splitlines()[0].count(";") > text.splitlines()[0].count(",") else ","
    out: dict[str, list[str]] = {}
    for i, row in enumerate(csv.DictReader(io.StringIO(text), delimiter=delimiter), start=2):
        key = match_municipality(row.get("municipality"))
        if key is None:
            raise OutboxConfigError(f"{path}, Zeile {i}: Kommune '{row.get('municipality')}' unbekannt.")
        for address in re.split(r"[;,\s]+", row.get("email") or ""):
            if address and address not in out.setdefault(key, []):
                out[key].append(address)
    return out


# --- deliveries --------------------------------------------------------------------------------------------
def new_deliveries(con: duckdb.DuckDBPyConnection, record: list[dict]) -> dict[str, list[Delivery]]:
    """Per municipality, its delivered files that no message has covered yet (in ledger order)."""
    if not warehouse.table_exists(con, "raw", "ingestion_files"):
        return {}
    done = reported(record)
    families = list(FAMILIES)
    ledger = warehouse.rows(
        con,
        f"""
        select source_family, source_file, file_name, file_hash, municipality_key, period, outcome, rows_read,
               rows_loaded, rows_rejected, error_message
        from raw.ingestion_files
        where municipality_key is not null and source_family in ({", ".join("?" * len(families))})
        order by municipality_key, source_family, period nulls last, source_file""",
        families,
    )
    fresh = [r for r in ledger if (r["source_family"], r["source_file"], r["file_hash"]) not in done]
    if not fresh:
        return {}
    rejected: dict[tuple[str, str], list[dict]] = {}
    for r in warehouse.rows(
        con,
        f"""
            select source_family, source_file, sheet, row_number, column_name, value_found, rule, message_de
            from raw.rejected_rows where source_family in ({", ".join("?" * len(families))})
            order by source_family, source_file, row_number nulls first, column_name""",
        families,
    ):
        rejected.setdefault((r["source_family"], r["source_file"]), []).append(r)
    out: dict[str, list[Delivery]] = {}
    for r in fresh:
        out.setdefault(r["municipality_key"], []).append(
            Delivery(
                r["source_family"],
                r["source_file"],
                r["file_name"],
                r["file_hash"],
                r["municipality_key"],
                r["period"],
                r["outcome"],
                r["rows_read"] or 0,
                r["rows_loaded"] or 0,
                r["rows_rejected"] or 0,
                r["error_message"],
                rejected.get((r["source_family"], r["source_file"]), []),
            )
        )
    return out


# --- the message -------------------------------------------------------------------------------------------
def _label(rule: str, family: str) -> str:
    return feedback.rule_shown(rule, family).label


def _rows(n: int) -> str:
    return count_of(n, "Zeile", "Zeilen")


def _attachment(delivery: Delivery, feedback_root: Path) -> tuple[str, bytes, tuple[str, str]] | None:
    """(file name, content, MIME type) of what the coordinator needs to correct the file, if anything."""
    if not delivery.rejections:
        return None
    if delivery.family == "forecasts":
        path = feedback.workbook_path(
            feedback_root,
            {"municipality_key": delivery.municipality_key, "period": delivery.period, "file_name": delivery.file_name},
        )
        return (path.name, path.read_bytes(), XLSX_TYPE) if path.exists() else None
    rows = [r for r in delivery.rejections if r["row_number"] is not None]
    if not rows:
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    with_sheet = any(r["sheet"] for r in rows)  # a CSV or GeoJSON register has no sheets: no empty column
    writer.writerow(["Zeile", *(["Blatt"] if with_sheet else []), "Gefundener Wert", "Grund", "Hinweis"])
    for r in rows:
        writer.writerow(
            [
                r["row_number"],
                *([r["sheet"] or ""] if with_sheet else []),
                r["value_found"] or "",
                _label(r["rule"], delivery.family),
                r["message_de"],
            ]
        )
    name = f"{Path(delivery.file_name).stem}_Abgewiesene_Zeilen.csv"
    return name, buffer.getvalue().encode("utf-8-sig"), ("text", "csv")  # with BOM: Excel reads it as UTF-8


def message_text(municipality_name: str, deliveries: list[Delivery], attachments: dict[str, str]) -> str:
    """The German body: per delivered file what was loaded and rejected, and where the details are."""
    lines = [
        "Guten Tag,",
        "",
        f"im ZI Warehouse wurden neue Lieferungen der Kommune {municipality_name} verarbeitet:",
        "",
    ]
    indent = " " * len(f"{len(deliveries)}. ")  # continuation lines stay aligned past item 9
    for i, d in enumerate(deliveries, start=1):
        period = f", Berichtsquartal {format_quarter(d.period)}" if d.period and d.family == "forecasts" else ""
        lines.append(f"{i}. ".ljust(len(indent)) + f"{FAMILIES[d.family]} „{d.file_name}“{period}")
        outcome = d.outcome_shown
        if d.outcome in ("failed", "duplicate"):
            file_rule = next((r["rule"] for r in d.rejections if r["row_number"] is None), None)
            lines.append(f"{indent}Ergebnis: {outcome}" + (f" ({_label(file_rule, d.family)})." if file_rule else "."))
            if d.error_message:
                lines.append(f"{indent}{d.error_message}")
        elif d.outcome == "loaded":
            lines.append(f"{indent}Ergebnis: {outcome} ({_rows(d.rows_loaded)}).")
        else:
            lines.append(
                f"{indent}Ergebnis: {outcome}: {_rows(d.rows_read)} gelesen, {format_number(d.rows_loaded)} "
                f"übernommen, {format_number(d.rows_rejected)} abgewiesen."
            )
        if d.outcome not in ("failed", "duplicate"):
            reasons = Counter()
            for rule, rows in _rows_by_rule(d).items():
                reasons[_label(rule, d.family)] += len(rows)
            if reasons:
                several = sum(reasons.values()) > d.rows_rejected  # "(1 Zeile)" three times for one row
                lines.append(
                    f"{indent}Abgewiesen wegen: "
                    + "; ".join(f"{label} ({_rows(n)})" for label, n in reasons.most_common())
                    + (" – manche Zeilen aus mehreren Gründen." if several else ".")
                )
            for r in d.rejections:
                if r["row_number"] is None:
                    lines.append(f"{indent}Hinweis: {r['message_de']}")
        if d.source_file in attachments:
            lines.append(f"{indent}Einzelheiten im Anhang: „{attachments[d.source_file]}“.")
        if d.family == "forecasts" and d.to_resend:
            # the same name ending as the feedback workbook asks for: one revision above this file's
            suffix = feedback.next_correction_suffix(d.source_file)
            lines.append(f"{indent}Korrigierte Datei bitte erneut senden, Dateiname mit „{suffix}“.")
        lines.append("")
    # A forecast workbook's item already says how to resend it (with the name ending to use); the others do not.
    to_resend = [d for d in deliveries if d.to_resend and d.family != "forecasts"]
    if to_resend:
        files = "die betroffene Datei" if len(to_resend) == 1 else "die betroffenen Dateien"
        lines += [f"Bitte korrigieren Sie die abgewiesenen Zeilen und senden Sie {files} erneut.", ""]
    lines += ["Mit freundlichen Grüßen", "ZI Warehouse (diese Nachricht wurde automatisch erstellt)"]
    return "\n".join(lines) + "\n"


def _rows_by_rule(d: Delivery) -> dict[str, set]:
    out: dict[str, set] = {}
    for r in d.rejections:
        if r["row_number"] is not None:
            out.setdefault(r["rule"], set()).add((r["sheet"], r["row_number"]))
    return out


def compose(
    municipality_key: str, deliveries: list[Delivery], feedback_root: Path, sender: str, to: list[str]
) -> EmailMessage:
    """The message to one municipality about its new deliveries, with the attachments."""
    muni = municipality_by_key()[municipality_key]
    attached: dict[str, str] = {}
    files = []
    for d in deliveries:
        found = _attachment(d, feedback_root)
        if found:
            attached[d.source_file] = found[0]
            files.append(found)
    rejected = sum(d.to_resend for d in deliveries)  # a copy of a delivery already loaded asks for nothing
    subject = (
        f"ZI Klima.Werk: Rückmeldung zu {len(deliveries)} Lieferung{'en' if len(deliveries) > 1 else ''} "
        f"der Kommune {muni.name}" + (f" ({rejected} mit Abweisungen)" if rejected else "")
    )
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    if to:
        message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(message_text(muni.name, deliveries, attached))  # UTF-8, encoded as the standard says
    for name, content, (maintype, subtype) in files:
        # a text attachment says its encoding, or mail programs guess (and show "Baumh��he")
        params = {"charset": "utf-8"} if maintype == "text" else {}
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name, params=params)
    return message


# --- one run -----------------------------------------------------------------------------------------------
def _message_path(outbox_dir: Path, municipality_key: str, stamp: str) -> Path:
    path = outbox_dir / f"{stamp}_{municipality_key}.eml"
    n = 1
    while path.exists():  # two runs in the same second
        n += 1
        path = outbox_dir / f"{stamp}_{municipality_key}_{n}.eml"
    return path


def run(
    con: duckdb.DuckDBPyConnection,
    paths: config.Paths,
    settings: alerts.SmtpSettings | None = None,
    addresses: dict[str, list[str]] | None = None,
    log=print,
) -> OutboxResult:
    """Write a message per municipality with new deliveries, then send every unsent message that can be sent.

    ``settings`` None: nothing is sent (messages wait in the outbox); ``addresses`` None: no addresses known.
    """
    outbox_dir = paths.outbox
    record = read_record(outbox_dir)
    result = OutboxResult()
    sender = settings.sender if settings else "zi-warehouse@localhost"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for key, deliveries in new_deliveries(con, record).items():
        to = (addresses or {}).get(key, [])
        message = compose(key, deliveries, paths.feedback, sender, to)
        path = _message_path(outbox_dir, key, stamp)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(message.as_bytes(policy=SMTP_POLICY))
        os.replace(tmp, path)
        _append(
            outbox_dir,
            {
                "event": "written",
                "message": path.name,
                "municipality_key": key,
                "subject": message["Subject"],
                "files": [d.key for d in deliveries],
            },
        )
        result.written.append(path)
    for name, event in sorted(unsent(read_record(outbox_dir)).items()):
        path = outbox_dir / name
        key = event["municipality_key"]
        if not path.exists():  # deleted by hand: not to be sent; its deliveries stay reported
            _append(outbox_dir, {"event": "discarded", "message": name})
            continue
        to = (addresses or {}).get(key, [])
        if settings is None:
            result.pending.append(path)
            result.why_pending["SMTP nicht eingerichtet"] += 1
            continue
        if not to:
            result.pending.append(path)
            result.why_pending["keine Adresse"] += 1
            continue
        message = _addressed(path, settings.sender, to)
        server = f"{settings.host}:{settings.port}"
        try:  # the alerts' server and login, the municipality's recipients
            alerts.send(message, dataclasses.replace(settings, recipients=tuple(to)))
        except (OSError, smtplib.SMTPException) as exc:
            result.pending.append(path)
            result.why_pending["Versand gescheitert"] += 1
            result.failed.append(f"{name}: {exc}")
            _append(
                outbox_dir, {"event": "failed", "message": name, "to": to, "server": server, "error": str(exc)[:300]}
            )
            log(f"Rückmeldung {name} nicht gesendet ({server}): {exc}")
            continue
        _append(outbox_dir, {"event": "sent", "message": name, "to": to, "server": server})
        result.sent.append(path)
    return result


def _addressed(path: Path, sender: str, to: list[str]) -> EmailMessage:
    """The stored message with the current sender and recipients (the address file may have changed since)."""
    from email import message_from_bytes
    from email.policy import default

    message = message_from_bytes(path.read_bytes(), policy=default)
    for header, value in (("From", sender), ("To", ", ".join(to))):
        del message[header]
        message[header] = value
    return message


def run_command(log=print) -> OutboxResult:
    """The outbox of this data directory's working warehouse, with the environment's SMTP settings and addresses."""
    paths = config.paths()
    settings = alerts.SmtpSettings.from_env()
    addresses = coordinator_addresses()
    with warehouse.connect(paths.warehouse) as con:
        return run(con, paths, settings, addresses, log)
