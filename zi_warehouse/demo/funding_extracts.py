"""Demo funding database, rendered from the programme truth as CSV extracts (the file channel).

What belongs here: the state of the funding database at any moment (``database_rows``; the demo
PostgreSQL database in ``funding_database.py`` is loaded from the same function) and its rendering as
one full extract as of 2020-12-31 plus quarterly deltas up to the demo's last quarter. Extracts up to
2022 come from the old export (Windows-1252, no thousands separators); from 2023 the new system writes
UTF-8 with BOM and thousands separators. Deterministic for (programme, seed).

Calibration (docs/domain.md#programme-figures) is carried through unchanged: the full extract as of 2020-12-31 holds the
64 applications of 2020 (5,200,000.00 EUR requested) and their 60 grant notices of 2020.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zlib
from decimal import Decimal
from pathlib import Path

from zi_warehouse.demo.programme import LAST_QUARTER, DemoProgramme, quarter_end, quarters
from zi_warehouse.german import format_number
from zi_warehouse.reference import municipality_by_key
from zi_warehouse.sources import funding as spec
from zi_warehouse.sources.funding_entities import label_de

FULL_AS_OF = dt.date(2020, 12, 31)
#: The export system changed at the start of 2023 (encoding and number format).
NEW_SYSTEM_FROM = dt.date(2023, 1, 1)


def _at(day: dt.date, key: str, seed: int) -> dt.datetime:
    """A deterministic office-hours time on ``day`` for the change of record ``key``."""
    h = zlib.crc32(f"{seed}:{key}:{day.isoformat()}".encode())
    return dt.datetime(day.year, day.month, day.day, 7 + h % 11, (h >> 8) % 60, (h >> 16) % 60)


def _eur(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def database_rows(programme: DemoProgramme, as_of: dt.datetime, seed: int = 7) -> dict[str, list[dict]]:
    """Every record of the funding database as it stood at ``as_of`` (keys: entity names; values in raw
    column names and Python types; codes as reference keys; ``updated_at`` = last change <= as_of)."""
    day = as_of.date()
    names = municipality_by_key()
    rows: dict[str, list[dict]] = {e.name: [] for e in spec.ENTITIES}
    for p in sorted(programme.projects, key=lambda p: p.application_id or ""):
        if not p.application_id or p.application_date is None or p.application_date > day:
            continue
        events = [
            d
            for d in (p.application_date, p.decision_date, p.construction_start, p.completion_date, p.withdrawn_date)
            if d is not None and d <= day
        ]
        status = p.status_on(day)
        rows["applications"].append(
            {
                "application_id": p.application_id,
                "project_id": p.project_id,
                "municipality_name": names[p.municipality_key].name,
                "title": p.title,
                "measure_type_key": p.measure_type_key,
                "owner_type": p.owner_type,
                "application_date": p.application_date,
                "total_cost_eur": _eur(p.total_cost_eur),
                "requested_eur": _eur(p.requested_eur),
                "funding_rate_pct": round(p.funding_rate * 100, 4),
                "status_key": status,
                "contact_name": p.contact_name,
                "contact_email": p.contact_email,
                "updated_at": _at(max(events), p.application_id, seed),
            }
        )
        if not p.approval_id or p.decision_date is None or p.decision_date > day:
            continue
        started = p.construction_start if p.construction_start and p.construction_start <= day else None
        completed = p.completion_date if p.completion_date and p.completion_date <= day else None
        last_change = max(d for d in (p.decision_date, started, completed) if d is not None)
        rows["approvals"].append(
            {
                "approval_id": p.approval_id,
                "application_id": p.application_id,
                "notice_date": p.decision_date,
                "approved_eur": _eur(p.approved_eur),
                "construction_start_date": started,
                "completion_date": completed,
                "updated_at": _at(last_change, p.approval_id, seed),
            }
        )
        for a in p.amendments:
            if a.notice_date <= day:
                amendment_id = f"{p.approval_id}-{a.amendment_no:02d}"
                rows["amendments"].append(
                    {
                        "amendment_id": amendment_id,
                        "approval_id": p.approval_id,
                        "amendment_no": a.amendment_no,
                        "notice_date": a.notice_date,
                        "approved_eur": _eur(a.approved_eur),
                        "updated_at": _at(a.notice_date, amendment_id, seed),
                    }
                )
        for pay in p.payments:
            if pay.paid_on <= day:
                rows["payments"].append(
                    {
                        "payment_id": pay.payment_id,
                        "approval_id": p.approval_id,
                        "paid_on": pay.paid_on,
                        "amount_eur": _eur(pay.amount_eur),
                        "updated_at": _at(pay.paid_on, pay.payment_id, seed),
                    }
                )
        measure_id = f"{p.approval_id}-M1"
        # The measure is recorded with the grant notice and confirmed with the proof of use.
        rows["measures"].append(
            {
                "measure_id": measure_id,
                "approval_id": p.approval_id,
                "measure_type_key": p.measure_type_key,
                "is_in_designated_area": p.in_designated_area,
                "designated_area_name": p.designated_area_name,
                "disconnected_area_m2": float(p.disconnected_area_m2),
                "affected_surface_type": p.affected_surface_type,
                "surface_change_m2": float(p.surface_change_m2),
                "trees": p.trees,
                "updated_at": _at(completed or p.decision_date, measure_id, seed),
            }
        )
    for entity in spec.ENTITIES:
        rows[entity.name].sort(key=lambda r, k=entity.key: r[k])
    return rows


def extract_schedule() -> list[tuple[int, str, dt.date]]:
    """(sequence number, "full"/"delta", as-of date): the full extract, then one delta per quarter."""
    schedule = [(0, "full", FULL_AS_OF)]
    for seq, (y, q) in enumerate(quarters((2021, 1), LAST_QUARTER), start=1):
        schedule.append((seq, "delta", quarter_end(y, q)))
    return schedule


def _cut_off(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59, 59))


def format_value(col: spec.Column, value, new_system: bool) -> str:
    if value is None:
        return ""
    kind = col.kind
    if kind == "date":
        return f"{value:%d.%m.%Y}"
    if kind == "timestamp":
        return f"{value:%d.%m.%Y %H:%M:%S}"
    if kind in ("eur", "number"):
        decimals = 2 if kind == "eur" else 4
        text = format_number(float(value), decimals, thousands=new_system)
        if kind == "number":  # 98,7500 -> 98,75; 1200,0000 -> 1200
            text = text.rstrip("0").rstrip(",")
        return text
    if kind == "int":
        return str(int(value))
    if kind == "bool":
        return "ja" if value else "nein"
    if kind in ("measure_type", "status", "owner_type"):
        return label_de(kind, value)
    return str(value)


def format_control_total(value: float) -> str:
    return format_number(value, 2)


def render_file(
    entity: spec.Entity, rows: list[dict], seq: int, kind: str, as_of: dt.date, predecessor: str | None
) -> bytes:
    """One extract file: header, rows, control record; encoded as the exporting system of ``as_of`` did."""
    new_system = as_of >= NEW_SYSTEM_FROM
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([c.header_de for c in entity.columns])
    for row in rows:
        writer.writerow([format_value(c, row.get(c.name), new_system) for c in entity.columns])
    total = sum(float(r[entity.control_column]) for r in rows)
    buffer.write(
        f"{spec.CONTROL_MARKER};Extrakt={spec.extract_id(seq, kind, as_of)};Vorgaenger={predecessor or '-'};"
        f"Stichtag={as_of:%d.%m.%Y};Saetze={len(rows)};Summe={format_control_total(total)}\r\n"
    )
    text = buffer.getvalue()
    return ("\ufeff" + text).encode("utf-8") if new_system else text.encode("cp1252")


def write(landing_dir: Path, programme: DemoProgramme, seed: int) -> list[Path]:
    """Write the full extract and every quarterly delta into ``landing_dir/funding``; return the paths."""
    folder = landing_dir / spec.SOURCE_FAMILY
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    previous_cut: dt.datetime | None = None
    previous_id: str | None = None
    for seq, kind, as_of in extract_schedule():
        cut = _cut_off(as_of)
        state = database_rows(programme, cut, seed)
        for entity in spec.ENTITIES:
            rows = state[entity.name]
            if kind == "delta":
                rows = [r for r in rows if r["updated_at"] > previous_cut]
            path = folder / spec.file_name(seq, kind, as_of, entity)
            path.write_bytes(render_file(entity, rows, seq, kind, as_of, previous_id))
            written.append(path)
        previous_cut, previous_id = cut, spec.extract_id(seq, kind, as_of)
    return written
