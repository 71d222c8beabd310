"""Demo forecast workbooks: one per municipality and quarter, rendered from the programme's truth.

Each workbook lists the municipality's projects known by the quarter end (projects terminal for more
than a year are dropped) with their status then, forecast values with noise that shrinks as a project
matures, and forecast payments per quarter. A configurable share of the mistakes people make is
injected and recorded in a manifest (``render(...).mistakes``) so a test can prove each one is caught:

- formatting mess that must load with the right value (German text numbers, aliases, trailing spaces,
  dates as text/serial/quarter, moved header, blank rows/columns, totals row, notes, extra sheets, CSV);
- mistakes that must be rejected with a specific rule. They only hit rows of projects already accepted in
  an earlier submission, or extra junk rows, so the calibration (91 projects first reported in 2020)
  holds at any mistake rate;
- file-level trouble: duplicate deliveries, corrupt files and wrong headers (always followed by a good
  resend), corrected resubmissions, a file name naming another municipality.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from zi_warehouse.demo.programme import DemoProgramme, DemoProject, quarter_end, quarter_of
from zi_warehouse.forecasts import parsing as p
from zi_warehouse.forecasts import template as t
from zi_warehouse.german import format_date, format_number
from zi_warehouse.reference import _read as _read_seed
from zi_warehouse.reference import municipality_by_key

DEFAULT_MISTAKE_RATE = 0.03
_TERMINAL = {"completed", "withdrawn", "rejected"}
#: Noise (relative standard deviation) of a forecast by status: estimates firm up as a project matures.
_NOISE = {"idea": 0.18, "application_in_preparation": 0.10, "application_filed": 0.05}

# Rejecting mistakes: kind -> the rule that must reject the row.
REJECTING = {
    "requested_gt_cost": "requested_le_total_cost",
    "completion_before_start": "completion_after_start",
    "negative_area": "area_non_negative",
    "fractional_trees": "trees_whole_number",
    "unknown_status": "known_status",
    "unknown_measure_type": "known_measure_type",
    "rate_too_high": "funding_rate_within_limits",
    "cost_not_a_number": "type",
    "start_not_a_date": "type",
    "other_municipality": "municipality_matches_submission",
    "unknown_municipality": "known_municipality",
    "duplicate_row": "duplicate_project_id",
    "junk_row_without_id": "required",
}
FORMATTING = (
    "cost_as_german_text",
    "area_approximate",
    "cost_in_millions",
    "rate_as_percent_text",
    "start_as_text",
    "start_as_serial",
    "completion_as_quarter",
    "application_as_quarter_text",
    "municipality_alias",
    "status_trailing_spaces",
)
FILE_FAILURES = {
    "duplicate_delivery": "duplicate_delivery",
    "corrupt_file": "file_corrupt",
    "renamed_header": "header_mismatch",
}


@dataclass(frozen=True)
class InjectedMistake:
    source_file: str  # relative to the landing folder, e.g. 'forecasts/Prognose_Bochum_2022-Q3.xlsx'
    row_number: int | None  # 1-based sheet row (None: the whole file)
    project_id: str | None
    kind: str
    rule: str | None  # the rule that must reject it; None: must load, with ``column`` == ``expected``
    column: str | None = None
    expected: object = None


@dataclass
class DemoForecasts:
    paths: list[Path] = field(default_factory=list)
    mistakes: list[InjectedMistake] = field(default_factory=list)


def write(
    landing_dir: Path, programme: DemoProgramme, seed: int, mistake_rate: float = DEFAULT_MISTAKE_RATE
) -> list[Path]:
    """Render every submission of ``programme`` into ``landing_dir/forecasts`` (like every demo writer)."""
    return render(Path(landing_dir) / "forecasts", programme, seed, mistake_rate).paths


def _aliases() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in _read_seed("municipality_aliases.csv"):
        out.setdefault(row["municipality_key"], []).append(row["alias"])
    return out


def _noisy(rng: random.Random, value: float, status: str) -> float:
    sd = _NOISE.get(status, 0.0)
    return value * min(1.5, max(0.6, rng.gauss(1.0, sd))) if sd else value


def _terminal_since(proj: DemoProject, status: str) -> dt.date | None:
    if status == "completed":
        return proj.completion_date
    if status == "withdrawn":
        return proj.withdrawn_date
    if status == "rejected":
        return proj.decision_date
    return None


def _project_row(rng: random.Random, proj: DemoProject, status: str, y: int, q: int, version: str) -> dict:
    qend = quarter_end(y, q)
    cost = round(_noisy(rng, proj.total_cost_eur, status), 2)
    area_factor = _noisy(rng, 1.0, status)
    app_day = proj.application_date or (max(qend, proj.idea_date) + dt.timedelta(days=rng.randint(90, 360)))
    start = proj.construction_start or (app_day + dt.timedelta(days=rng.randint(90, 240)))
    completion = proj.completion_date or (start + dt.timedelta(days=rng.randint(180, 540)))
    ay, aq = quarter_of(app_day)
    row = {
        "project_id": proj.project_id,
        "title": proj.title,
        "municipality": municipality_by_key()[proj.municipality_key].name,
        "is_in_designated_area": proj.in_designated_area,
        "designated_area_name": proj.designated_area_name,
        "measure_type": t.measure_type_labels()[proj.measure_type_key],
        "status": t.status_labels()[status],
        "total_cost_eur": cost,
        "requested_funding_eur": round(cost * proj.funding_rate, 2),
        "funding_rate": proj.funding_rate,
        "planned_application_period": f"Q{aq}/{ay}",
        "planned_start_date": start,
        "planned_completion_date": completion,
        "expected_disconnected_area_m2": round(proj.disconnected_area_m2 * area_factor),
        "expected_trees": proj.trees,
        "contact_name": proj.contact_name,
        "contact_email": proj.contact_email,
        "remarks": None,
    }
    if version != "2020":
        row["affected_surface_type"] = (
            t.SURFACE_TYPES.get(proj.affected_surface_type) if proj.affected_surface_type else None
        )
        row["surface_change_m2"] = round(proj.surface_change_m2 * area_factor)
    payments = {}
    if status in ("approved", "in_construction"):
        approved = proj.current_approved_eur or proj.requested_eur
        remaining = approved - sum(x.amount_eur for x in proj.payments if x.paid_on <= qend)
        upcoming = [pq for pq in t.next_quarters(y, q) if quarter_end(*pq) <= completion + dt.timedelta(days=180)]
        if remaining > 0 and upcoming:
            share = round(remaining / len(upcoming), -2)
            for pq in upcoming:
                payments[pq] = share
    row["payments"] = payments
    return row


def _file_name(municipality_name: str, y: int, q: int, suffix: str = "", ext: str = ".xlsx") -> str:
    safe = municipality_name.replace(" ", "-").replace("/", "-")  # "Fröndenberg/Ruhr" is no file name
    return f"Prognose_{safe}_{y}-Q{q}{suffix}{ext}"


def _write_xlsx(
    path: Path,
    version: str,
    municipality_name: str,
    y: int,
    q: int,
    stand: dt.date,
    rows: list[dict],
    layout: t.SheetLayout,
    extra_sheets: bool,
    hidden_old: bool,
) -> list[int]:
    wb = t.new_workbook(path, created=stand)
    if extra_sheets:
        ws = wb.add_worksheet("Hinweise Kommune")
        ws.write(0, 0, "Interne Hinweise: Abstimmung mit Tiefbauamt läuft.")
    # Only the project sheet: the instructions and the hidden drop-down lists of the template triple the
    # writing time of ~470 files and the reader ignores them anyway (tests cover the full template).
    numbers = t.write_project_sheet(
        wb, version, municipality_name, (y, q), stand, rows, t.next_quarters(y, q), layout=layout
    )
    if hidden_old:
        # An old copy of the sheet kept hidden by the sender: it must not be read.
        old = [dict(r, total_cost_eur=1.0) for r in rows[:2]]
        t.write_project_sheet(
            wb, version, municipality_name, (y, q), stand, old, t.next_quarters(y, q), sheet_name="Projekte (alt)"
        )
        wb.get_worksheet_by_name("Projekte (alt)").hide()
    wb.get_worksheet_by_name(t.PROJECT_SHEET).activate()
    wb.close()
    return numbers


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nein"
    if isinstance(value, dt.date):
        return format_date(value)
    if isinstance(value, float):
        return format_number(value, 2, thousands=False)
    return str(value)


def _write_csv(
    path: Path, version: str, municipality_name: str, y: int, q: int, stand: dt.date, rows: list[dict]
) -> list[int]:
    """What Excel's 'CSV (Trennzeichen-getrennt)' makes of the sheet: ';', German numbers, cp1252."""
    columns = t.COLUMN_ORDER[version]
    pqs = t.next_quarters(y, q)
    lines = [
        [t.TITLE],
        [t.BLOCK_LABELS["version"], version],
        [t.BLOCK_LABELS["municipality"], municipality_name],
        [t.BLOCK_LABELS["period"], f"Q{q}/{y}"],
        [t.BLOCK_LABELS["submitted_on"], format_date(stand)],
        [],
    ]
    lines.append([t.header_maps()[version][c] for c in columns] + [t.payment_header(version, *pq) for pq in pqs])
    numbers = []
    for row in rows:
        lines.append([_csv_cell(row.get(c)) for c in columns] + [_csv_cell(row["payments"].get(pq)) for pq in pqs])
        numbers.append(len(lines))
    with open(path, "w", newline="", encoding="cp1252", errors="replace") as fh:
        csv.writer(fh, delimiter=";").writerows(lines)
    return numbers


def render(
    landing_dir: Path, programme: DemoProgramme, seed: int, mistake_rate: float = DEFAULT_MISTAKE_RATE
) -> DemoForecasts:
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    prefix = landing_dir.name
    out = DemoForecasts()
    names = municipality_by_key()
    aliases = _aliases()
    by_muni: dict[str, list[DemoProject]] = {}
    for proj in programme.projects:
        by_muni.setdefault(proj.municipality_key, []).append(proj)
    accepted: dict[str, set[str]] = {}
    for m, y, q in programme.submissions():
        rng = random.Random(f"{seed}-{programme.scale}-{m}-{y}-{q}")
        version = t.version_for(y)
        qend = quarter_end(y, q)
        name = names[m].name
        done = accepted.setdefault(m, set())
        rows = []
        known = [proj for proj in by_muni.get(m, []) if proj.idea_date <= qend]
        for proj in known:
            status = proj.status_on(qend)
            since = _terminal_since(proj, status) if status in _TERMINAL else None
            if since and (qend - since).days > 365:
                continue
            rows.append(_project_row(rng, proj, status, y, q, version))
        if not rows and known:
            # A coordinator with only long-finished projects still reports every quarter: the workbook then
            # lists them with their final status rather than not arriving at all.
            rows = [_project_row(rng, proj, proj.status_on(qend), y, q, version) for proj in known]
        if not rows:
            continue
        row_mess: list[tuple[int, str, str | None, object]] = []  # (row index, kind, column, expected)
        rejects: list[tuple[int, str]] = []
        for i, row in enumerate(rows):
            if rng.random() < mistake_rate:
                kind = rng.choice(FORMATTING)
                col, expected = _apply_formatting(rng, row, kind, m, aliases)
                if col:
                    row_mess.append((i, kind, col, expected))
            if row["project_id"] in done and rng.random() < mistake_rate:
                kind = rng.choice([k for k in REJECTING if k not in ("duplicate_row", "junk_row_without_id")])
                if _apply_rejecting(rng, row, kind, m, names):
                    rejects.append((i, kind))
        extra = []  # junk rows and duplicates appended at the end: (kind, row, project_id)
        if rng.random() < mistake_rate * 2:
            dup = rng.choice(rows)
            if dup["project_id"] in done and not any(rows.index(dup) == i for i, _ in rejects):
                extra.append(("duplicate_row", dict(dup), dup["project_id"]))
        if rng.random() < mistake_rate * 2:
            extra.append(
                (
                    "junk_row_without_id",
                    {
                        "title": "Neue Idee: Spielplatz entsiegeln",
                        "municipality": name,
                        "total_cost_eur": 50000.0,
                        "payments": {},
                    },
                    None,
                )
            )
        all_rows = rows + [r for _, r, _ in extra]
        layout = t.SheetLayout(
            leading_blank_cols=1 if rng.random() < 0.1 else 0,
            extra_rows_above_block=rng.choice([1, 2, 3]) if rng.random() < 0.15 else 0,
            blank_rows_after={i for i in range(len(rows) - 1) if rng.random() < 0.05},
            totals_row=rng.random() < 0.15,
            notes=["Hinweis: Kosten sind Schätzungen, Stand der Haushaltsplanung."] if rng.random() < 0.15 else [],
            header_trailing_space=rng.random() < 0.1,
        )
        stand = qend + dt.timedelta(days=rng.randint(5, 25))
        as_csv = rng.random() < 0.02
        wrong_name = rng.random() < mistake_rate / 2
        file_name_muni = name
        if wrong_name:  # copied from a neighbour's file and not renamed: the content decides
            file_name_muni = names[rng.choice(sorted(k for k in names if k != m))].name
        fname = _file_name(file_name_muni, y, q, ext=".csv" if as_csv else ".xlsx")
        if wrong_name:  # another prefix, so it never overwrites the neighbour's own file
            fname = "Quartalsmeldung" + fname[len("Prognose") :]
        # A failed first attempt (corrupt, renamed header) is always followed by the good file.
        failure = None
        if y > 2020 and rng.random() < mistake_rate / 2:
            failure = rng.choice(["corrupt_file", "renamed_header"])
            bad_name = _file_name(name, y, q, "_erster-Versuch")
            bad_path = landing_dir / bad_name
            if failure == "corrupt_file":
                _write_xlsx(bad_path, version, name, y, q, stand, rows, t.SheetLayout(), False, False)
                data = bad_path.read_bytes()
                bad_path.write_bytes(data[: len(data) // 3])
            else:
                renamed = [dict(r) for r in rows]
                path_tmp = bad_path
                _write_xlsx(path_tmp, version, name, y, q, stand, renamed, t.SheetLayout(), False, False)
                _rename_header(path_tmp, version)
            out.paths.append(bad_path)
            out.mistakes.append(InjectedMistake(f"{prefix}/{bad_name}", None, None, failure, FILE_FAILURES[failure]))
        resubmit = bool(rejects) and rng.random() < 0.5
        path = landing_dir / fname
        if as_csv:
            numbers = _write_csv(path, version, name, y, q, stand, all_rows)
        else:
            numbers = _write_xlsx(
                path,
                version,
                name,
                y,
                q,
                stand,
                all_rows,
                layout,
                extra_sheets=rng.random() < 0.1,
                hidden_old=rng.random() < 0.05,
            )
        out.paths.append(path)
        src = f"{prefix}/{fname}"
        if wrong_name:
            out.mistakes.append(
                InjectedMistake(src, None, None, "file_name_other_municipality", "file_name_municipality_mismatch")
            )
        for i, kind, col, expected in row_mess:
            out.mistakes.append(InjectedMistake(src, numbers[i], rows[i]["project_id"], kind, None, col, expected))
        for i, kind in rejects:
            out.mistakes.append(InjectedMistake(src, numbers[i], rows[i]["project_id"], kind, REJECTING[kind]))
        for k, (kind, _, pid) in enumerate(extra):
            out.mistakes.append(InjectedMistake(src, numbers[len(rows) + k], pid, kind, REJECTING[kind]))
        if rng.random() < mistake_rate / 2:
            copy_name = f"{path.stem}_Kopie{path.suffix}"
            shutil.copyfile(path, landing_dir / copy_name)
            out.paths.append(landing_dir / copy_name)
            out.mistakes.append(
                InjectedMistake(f"{prefix}/{copy_name}", None, None, "duplicate_delivery", "duplicate_delivery")
            )
        if resubmit:  # the coordinator fixes the rejected rows and sends a correction
            fixed = [
                _project_row(
                    random.Random(f"{seed}-fix-{m}-{y}-{q}-{i}"),
                    _by_id(by_muni[m], r["project_id"]),
                    _by_id(by_muni[m], r["project_id"]).status_on(qend),
                    y,
                    q,
                    version,
                )
                if any(i == j for j, _ in rejects)
                else r
                for i, r in enumerate(rows)
            ]
            fix_name = _file_name(name, y, q, "_korrektur1")
            _write_xlsx(
                landing_dir / fix_name,
                version,
                name,
                y,
                q,
                stand + dt.timedelta(days=rng.randint(7, 20)),
                fixed,
                t.SheetLayout(),
                False,
                False,
            )
            out.paths.append(landing_dir / fix_name)
        for row in rows:
            done.add(row["project_id"])
    return out


def _by_id(projects: list[DemoProject], project_id: str) -> DemoProject:
    return next(x for x in projects if x.project_id == project_id)


def _rename_header(path: Path, version: str) -> None:
    """Rewrite a workbook with one header renamed by the sender (an unknown header fails the file)."""
    import python_calamine as pc

    # Simplest faithful way: write the sheet again with a custom header text via a patched map copy.
    wb = pc.CalamineWorkbook.from_path(str(path))
    grid = wb.get_sheet_by_name(t.PROJECT_SHEET).to_python(skip_empty_area=False)
    wb.close()
    old = t.header_maps()[version]["total_cost_eur"]
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"in_memory": True})
    book.set_properties({"created": dt.datetime(2021, 1, 1)})
    ws = book.add_worksheet(t.PROJECT_SHEET)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v == "" or v is None:
                continue
            ws.write(i, j, "Kosten gesamt (brutto)" if v == old else v)
    book.close()


def _apply_formatting(rng, row: dict, kind: str, m: str, aliases) -> tuple[str | None, object]:
    """Change a cell's representation but not its meaning; returns (column, value the warehouse must hold)."""
    if kind == "cost_as_german_text":
        row["total_cost_eur"] = format_number(row["total_cost_eur"], 2)
        return "total_cost_eur", round(p.parse_number(row["total_cost_eur"]), 2)
    if kind == "area_approximate" and row["expected_disconnected_area_m2"]:
        row["expected_disconnected_area_m2"] = "ca. " + format_number(row["expected_disconnected_area_m2"], 0)
        return "expected_disconnected_area_m2", p.parse_number(row["expected_disconnected_area_m2"])
    if kind == "cost_in_millions":
        millions = round(row["total_cost_eur"] / 1e6, 2)
        if millions < 0.1:
            return None, None
        row["total_cost_eur"] = format_number(millions, 2, thousands=False) + " Mio"
        row["requested_funding_eur"] = None  # derived from the rate, as the coordinator left it empty
        return "total_cost_eur", round(millions * 1e6, 2)
    if kind == "rate_as_percent_text":
        row["funding_rate"] = format_number(row["funding_rate"] * 100, 0) + " %"
        return "funding_rate", p.parse_percent_or_fraction(row["funding_rate"])
    if kind == "start_as_text":
        day = row["planned_start_date"]
        row["planned_start_date"] = format_date(day)
        return "planned_start_date", day
    if kind == "start_as_serial":
        day = row["planned_start_date"]
        row["planned_start_date"] = p.excel_serial(day)
        return "planned_start_date", day
    if kind == "completion_as_quarter":
        day = row["planned_completion_date"]
        y, q = quarter_of(day)
        row["planned_completion_date"] = f"{q}. Quartal {y}"
        return "planned_completion_date", quarter_end(y, q)
    if kind == "application_as_quarter_text":
        y, q = row["planned_application_period"][3:], row["planned_application_period"][1]
        row["planned_application_period"] = f"{q}. Quartal {y}"
        return "planned_application_period", f"{y}-Q{q}"
    if kind == "municipality_alias" and aliases.get(m):
        row["municipality"] = rng.choice(aliases[m]) + "  "
        return "municipality_name_found", row["municipality"].strip()
    if kind == "status_trailing_spaces":
        key = {label: k for k, label in t.status_labels().items()}[row["status"]]
        row["status"] = row["status"] + "   "
        return "status_key", key
    return None, None


def _apply_rejecting(rng, row: dict, kind: str, m: str, names) -> bool:
    """Make the row wrong in one way a person does; returns False when the mistake does not apply."""
    if kind == "requested_gt_cost":
        if not isinstance(row["total_cost_eur"], float):
            return False
        row["requested_funding_eur"] = round(row["total_cost_eur"] * 1.15, 2)
        row["funding_rate"] = None
    elif kind == "completion_before_start":
        if not isinstance(row["planned_start_date"], dt.date) or not isinstance(
            row["planned_completion_date"], dt.date
        ):
            return False
        row["planned_start_date"], row["planned_completion_date"] = (
            row["planned_completion_date"] + dt.timedelta(days=30),
            row["planned_start_date"],
        )
    elif kind == "negative_area":
        if (
            not isinstance(row["expected_disconnected_area_m2"], (int, float))
            or not row["expected_disconnected_area_m2"]
        ):
            return False
        row["expected_disconnected_area_m2"] = -row["expected_disconnected_area_m2"]
    elif kind == "fractional_trees":
        row["expected_trees"] = f"{rng.randint(1, 20)},5"
    elif kind == "unknown_status":
        row["status"] = "in Arbeit"
    elif kind == "unknown_measure_type":
        row["measure_type"] = "Spielplatz"
    elif kind == "rate_too_high":
        row["funding_rate"] = "120 %"
        row["requested_funding_eur"] = None
    elif kind == "cost_not_a_number":
        row["total_cost_eur"] = "offen"
    elif kind == "start_not_a_date":
        row["planned_start_date"] = "Frühjahr nächstes Jahr"
    elif kind == "other_municipality":
        row["municipality"] = names[rng.choice(sorted(k for k in names if k != m))].name
    elif kind == "unknown_municipality":
        row["municipality"] = "Emscherstadt"
    else:
        return False
    return True
