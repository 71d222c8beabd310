"""Funding database, file channel: full and delta CSV extracts of applications, approvals, amendments,
payments and measures (see docs/funding-database.md).

What belongs here: the extract format (file names, headers, control record), the raw tables (the entities
themselves are specified in ``funding_entities.py``, shared with the database channel), and the one validation pipeline both channels use
(strings in, typed rows or rejections out; vectorised in DuckDB, no row loops).

Why ~620 lines: the format, the raw tables and the validation are one contract that both channels (files and
the live database, ``funding_db.py``) go through; the entity specifications already live apart.

An extract is ``zi_foerderung_<seq>_<voll|delta>_<YYYYMMDD>`` and consists of one file per entity,
``<extract>_<entity>.csv``: semicolon-separated, Windows-1252 or UTF-8 with BOM, German decimals and dates,
closed by a control record ``#KONTROLLSATZ;Extrakt=...;Vorgaenger=...;Stichtag=...;Saetze=...;Summe=...``.
A file without control record is truncated; a count or total that disagrees fails the whole file; a delta
whose predecessor in the sequence is missing is held back (``blocked``) until the gap is filled.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from zi_warehouse.accounting import FileResult, Rejection
from zi_warehouse.delimited import decode_lines, rows_from_lines
from zi_warehouse.german import format_number, quoted
from zi_warehouse.landing import LandedFile
from zi_warehouse.sources.funding_entities import (
    ENTITIES,
    ENTITY_BY_TOKEN,
    EXTRACT_FIELDS,
    KEY_LIST_SCHEMA,
    KEY_LIST_TABLE,
    SOURCE_FAMILY,
    Column,
    Entity,
    entity_schema,
    match_code,
)
from zi_warehouse.warehouse import quote_ident as _q

RAW_TABLES: dict[str, pa.Schema] = {
    **{e.raw_table: entity_schema(e) for e in ENTITIES},
    KEY_LIST_TABLE: KEY_LIST_SCHEMA,
}


# --------------------------------------------------------------------------------------------------
# Validation pipeline: a table of strings -> typed good rows + rejections (both channels)
# --------------------------------------------------------------------------------------------------

_NUM_DE = r"-?(\d{1,3}(\.\d{3})+|\d+)"
_RULE_MESSAGES = {
    "required_missing": "Pflichtfeld '{header}' ist leer; bitte ausfüllen.",
    "date_unparseable": "'{value}' in '{header}' ist kein gültiges Datum (erwartet TT.MM.JJJJ).",
    "timestamp_unparseable": "'{value}' in '{header}' ist kein gültiger Zeitstempel (erwartet TT.MM.JJJJ hh:mm:ss).",
    "number_unparseable": "'{value}' in '{header}' ist keine gültige Zahl (erwartet z. B. 1.234,56).",
    "bool_unparseable": "'{value}' in '{header}' ist weder 'ja' noch 'nein'.",
    "negative_amount": "'{value}' in '{header}' ist negativ; Beträge und Flächen müssen >= 0 sein.",
    "unknown_municipality": "Kommune '{value}' ist nicht bekannt; bitte den amtlichen Namen einer RVR-Kommune verwenden.",
    "unknown_measure_type": "Maßnahmenart '{value}' ist nicht bekannt (siehe Förderrichtlinie FöRL KRiS).",
    "unknown_status": "Status '{value}' ist nicht bekannt (erlaubt z. B. 'Antrag gestellt', 'Bewilligt').",
    "unknown_owner_type": "Trägerart '{value}' ist nicht bekannt (erlaubt: 'kommunal', 'privat').",
    "duplicate_key": "Schlüssel '{value}' ({header}) kommt in diesem Extrakt mehrfach vor (Zeilen {rows}); "
    "alle Vorkommen wurden abgewiesen, bitte eindeutig liefern.",
    "updated_after_extract": "Änderungszeitpunkt '{value}' liegt nach dem Stichtag des Extrakts ({as_of}).",
}
_UNPARSEABLE_RULE = {
    "date": "date_unparseable",
    "timestamp": "timestamp_unparseable",
    "eur": "number_unparseable",
    "number": "number_unparseable",
    "int": "number_unparseable",
    "bool": "bool_unparseable",
    "municipality": "unknown_municipality",
    "measure_type": "unknown_measure_type",
    "status": "unknown_status",
    "owner_type": "unknown_owner_type",
}


def _parse_expr(col: Column, dialect: str, ref: str) -> str:
    """SQL turning the raw string ``ref`` into the column's type; NULL where it does not parse."""
    t = f"nullif(trim({ref}), '')"
    k = col.kind
    if k == "text":
        return t
    if k == "date":
        return f"try_strptime({t}, '%d.%m.%Y')::date" if dialect == "de" else f"try_cast({t} as date)"
    if k == "timestamp":
        if dialect == "de":
            return f"coalesce(try_strptime({t}, '%d.%m.%Y %H:%M:%S'), try_strptime({t}, '%d.%m.%Y %H:%M'))::timestamp"
        return f"try_cast({t} as timestamp)"
    if k in ("eur", "number"):
        target = "decimal(15,2)" if k == "eur" else "double"
        frac = r"(,\d{1,2})?" if k == "eur" else r"(,\d+)?"
        if dialect == "de":
            return (
                f"case when regexp_full_match({t}, '{_NUM_DE}{frac}') "
                f"then cast(replace(replace({t}, '.', ''), ',', '.') as {target}) end"
            )
        frac_iso = r"(\.\d{1,2})?" if k == "eur" else r"(\.\d+)?"
        return f"case when regexp_full_match({t}, '-?\\d+{frac_iso}') then cast({t} as {target}) end"
    if k == "int":
        return f"case when regexp_full_match({t}, '-?\\d+') then try_cast({t} as bigint) end"
    if k == "bool":
        return (
            f"case when lower({t}) in ('ja', 'j', 'true', 't', 'wahr', '1', 'x') then true "
            f"when lower({t}) in ('nein', 'n', 'false', 'f', 'falsch', '0') then false end"
        )
    # code lists: joined through a mapping table registered per column
    return f"{_q('_map_' + col.name)}.code"


def _error_expr(col: Column, ref: str, parsed: str) -> str:
    """SQL giving the first rule a value breaks (NULL if none): missing, unparseable, negative."""
    t = f"nullif(trim({ref}), '')"
    checks = []
    if col.required:
        checks.append(f"when {t} is null then 'required_missing'")
    if col.kind != "text":
        checks.append(f"when {t} is not null and ({parsed}) is null then '{_UNPARSEABLE_RULE[col.kind]}'")
    if col.kind in ("eur", "number", "int"):
        checks.append(f"when ({parsed}) < 0 then 'negative_amount'")
    return ("case " + " ".join(checks) + " end") if checks else "null::varchar"


@dataclass
class Validated:
    table: pa.Table  # good rows, typed, in the entity's raw schema (without lineage columns)
    rejections: list[Rejection]
    keys: list[str]  # every parseable business key in the input (loaded or rejected)
    control_total: object | None  # sum of the control column over all rows, None if any value is unparseable
    max_updated_at: dt.datetime | None  # over all rows with a parseable timestamp


def validate(entity: Entity, batches: list[tuple[pa.Table, dict]], dialect: str) -> list[Validated]:
    """Type and check extracts of one entity, all in one DuckDB pass (a connection costs ~40 ms; files
    are many and small). Returns one ``Validated`` per batch, in order.

    Each batch is (strings, extract): ``strings`` holds one string column per raw column name plus
    ``_row_number``; ``extract`` the EXTRACT_FIELDS values of its rows (``extract_as_of`` is the
    cut-off no change may be later than). ``dialect`` is "de" (German numbers and dates: the CSV
    extracts) or "iso" (the database channel casts to ISO text).
    """
    if not batches:
        return []
    parts = [
        t.select([c.name for c in entity.columns] + ["_row_number"]).append_column(
            "_batch", pa.array([i] * t.num_rows, pa.int64())
        )
        for i, (t, _) in enumerate(batches)
    ]
    strings = pa.concat_tables(parts)
    cut_offs = pa.table(
        {
            "_batch": pa.array(range(len(batches)), pa.int64()),
            "_as_of": pa.array([e["extract_as_of"] for _, e in batches], pa.timestamp("us")),
        }
    )
    con = duckdb.connect()
    try:
        con.register("s", strings)
        con.register("cut_offs", cut_offs)
        joins = []
        for col in entity.columns:
            if col.kind in ("municipality", "measure_type", "status", "owner_type"):
                values = [v for v in strings.column(col.name).unique().to_pylist() if v is not None]
                mapping = pa.table(
                    {
                        "value": pa.array(values, pa.string()),
                        "code": pa.array([match_code(col.kind, v) for v in values], pa.string()),
                    }
                )
                alias = _q("_map_" + col.name)
                con.register("_map_" + col.name, mapping)
                joins.append(f"left join {alias} on {alias}.value = s.{_q(col.name)}")

        def parsed(col: Column) -> str:
            return _parse_expr(col, dialect, "s." + _q(col.name))

        selects, errors = ["s._batch", "s._row_number"], []
        for col in entity.columns:
            if col.kind == "municipality":
                selects.append(f"nullif(trim(s.{_q(col.name)}), '') as {_q(col.name)}")
                selects.append(f"{parsed(col)} as municipality_key")
            else:
                selects.append(f"{parsed(col)} as {_q(col.name)}")
            errors.append(f"{_error_expr(col, 's.' + _q(col.name), parsed(col))} as {_q('_err_' + col.name)}")
        key = _q(entity.key)
        base = f"select {', '.join(selects + errors)} from s {' '.join(joins)}"
        window = f"over (partition by _batch, {key})"
        con.execute(
            f"create temp table v as select b.*, c._as_of, "
            f"case when {key} is not null and count(*) {window} > 1 then "
            f"string_agg(_row_number::varchar, ', ' order by _row_number) {window} end as _dup_rows "
            f"from ({base}) b join cut_offs c using (_batch)"
        )
        err_cols = [_q("_err_" + c.name) for c in entity.columns]
        no_error = " and ".join(f"v.{c} is null" for c in err_cols)
        good_filter = f"{no_error} and v._dup_rows is null and v.updated_at <= v._as_of"
        out_cols = [n for n in entity_schema(entity).names if n not in {f.name for f in EXTRACT_FIELDS}]
        good = con.sql(
            f"select v._batch, {', '.join('v.' + _q(n) for n in out_cols)}, v._row_number from v "
            f"where {good_filter} order by v._batch, v._row_number"
        ).to_arrow_table()
        # Rejections: only the bad rows travel to Python (usually none or a handful).
        bad = con.execute(
            f"select v._batch, v._row_number, v._dup_rows, v.updated_at, v._as_of, "
            f"{', '.join('v.' + c for c in err_cols)}, {', '.join('s.' + _q(c.name) for c in entity.columns)} "
            f"from v join s using (_batch, _row_number) where not ({good_filter}) order by v._batch, v._row_number"
        ).fetchall()
        keys = con.execute(
            f"select _batch, list(distinct {key} order by {key}) from v where {key} is not null group by _batch"
        ).fetchall()
        err_ctrl = _q("_err_" + entity.control_column)
        totals = con.execute(
            f"select _batch, sum({_q(entity.control_column)}), "
            f"count(*) filter ({err_ctrl} is not null and {err_ctrl} <> 'negative_amount'), max(updated_at) "
            f"from v group by _batch"
        ).fetchall()
    finally:
        con.close()
    n = len(entity.columns)
    rejections: dict[int, list[Rejection]] = {}
    for row in bad:
        batch, row_number, dup_rows, updated_at, as_of = row[:5]
        errs, raws = row[5 : 5 + n], row[5 + n :]
        found = rejections.setdefault(batch, [])
        for col, rule, raw in zip(entity.columns, errs, raws):
            if rule:
                found.append(
                    Rejection(
                        row_number, col.name, raw, rule, _RULE_MESSAGES[rule].format(value=raw, header=col.header_de)
                    )
                )
        if dup_rows:
            kcol = entity.column(entity.key)
            raw_key = raws[entity.columns.index(kcol)]
            found.append(
                Rejection(
                    row_number,
                    entity.key,
                    raw_key,
                    "duplicate_key",
                    _RULE_MESSAGES["duplicate_key"].format(value=raw_key, header=kcol.header_de, rows=dup_rows),
                )
            )
        if not any(errs) and not dup_rows and updated_at is not None and updated_at > as_of:
            found.append(
                Rejection(
                    row_number,
                    "updated_at",
                    raws[-1],
                    "updated_after_extract",
                    _RULE_MESSAGES["updated_after_extract"].format(value=raws[-1], as_of=f"{as_of:%d.%m.%Y %H:%M:%S}"),
                )
            )
    keys_by_batch = dict(keys)
    totals_by_batch = {b: (total, unparseable, max_updated) for b, total, unparseable, max_updated in totals}
    batch_ids = good.column("_batch").to_numpy()
    results = []
    offset = 0
    for i, (_, extract) in enumerate(batches):
        size = int((batch_ids == i).sum())  # rows are ordered by batch
        part = good.slice(offset, size)
        offset += size
        columns = {f.name: pa.array([extract.get(f.name)] * size, f.type) for f in EXTRACT_FIELDS}
        columns.update({name: part.column(name) for name in out_cols})
        columns["_row_number"] = part.column("_row_number")
        total, unparseable, max_updated = totals_by_batch.get(i, (None, 0, None))
        results.append(
            Validated(
                pa.table(columns),
                rejections.get(i, []),
                keys_by_batch.get(i, []),
                None if unparseable else (total or 0),
                max_updated,
            )
        )
    return results


def with_source_file(table: pa.Table, source_file: str) -> pa.Table:
    """Fill the lineage column ``_source_file`` (the loader adds missing lineage columns only as NULL)."""
    column = pa.array([source_file] * table.num_rows, pa.string())
    if "_source_file" in table.column_names:
        return table.set_column(table.schema.get_field_index("_source_file"), "_source_file", column)
    return table.append_column("_source_file", column)


def key_list_table(entity: Entity, keys: list[str], extract: dict) -> pa.Table:
    n = len(keys)
    return pa.table(
        {
            "entity": pa.array([entity.name] * n, pa.string()),
            "business_key": pa.array(sorted(keys), pa.string()),
            **{f.name: pa.array([extract.get(f.name)] * n, f.type) for f in EXTRACT_FIELDS},
        },
        schema=KEY_LIST_SCHEMA,
    )


# --------------------------------------------------------------------------------------------------
# The file channel: names, encodings, control records, sequence
# --------------------------------------------------------------------------------------------------

FILE_NAME_RE = re.compile(
    r"^(?P<extract>zi_foerderung_(?P<seq>\d{3})_(?P<kind>voll|delta)_(?P<date>\d{8}))_(?P<token>[a-z]+)\.csv$",
    re.IGNORECASE,
)
CONTROL_MARKER = "#KONTROLLSATZ"
KIND_BY_TOKEN = {"voll": "full", "delta": "delta"}


def extract_id(seq: int, kind: str, as_of: dt.date) -> str:
    return f"zi_foerderung_{seq:03d}_{'voll' if kind == 'full' else 'delta'}_{as_of:%Y%m%d}"


def file_name(seq: int, kind: str, as_of: dt.date, entity: Entity) -> str:
    return f"{extract_id(seq, kind, as_of)}_{entity.file_token}.csv"


@dataclass(frozen=True)
class ExtractFile:
    landed: LandedFile
    extract_id: str
    seq: int
    kind: str  # full | delta
    as_of_date: dt.date
    entity: Entity

    @property
    def as_of(self) -> dt.datetime:
        return dt.datetime.combine(self.as_of_date, dt.time(23, 59, 59))


def parse_file_name(landed: LandedFile) -> ExtractFile | None:
    m = FILE_NAME_RE.match(Path(landed.source_file).name)
    if not m or m["token"].lower() not in ENTITY_BY_TOKEN:
        return None
    try:
        day = dt.datetime.strptime(m["date"], "%Y%m%d").date()
    except ValueError:
        return None
    return ExtractFile(
        landed,
        m["extract"].lower(),
        int(m["seq"]),
        KIND_BY_TOKEN[m["kind"].lower()],
        day,
        ENTITY_BY_TOKEN[m["token"].lower()],
    )


def parse_control_record(line: str) -> dict[str, str]:
    parts = line.strip().split(";")
    fields = {}
    for part in parts[1:]:
        if "=" in part:
            k, v = part.split("=", 1)
            fields[k.strip()] = v.strip()
    return fields


def read_control_record(path: Path) -> dict[str, str] | None:
    """The control record at the end of an extract file, or None (cheap: reads the tail only)."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 2048))
        tail = fh.read()
    try:
        text = tail.decode("utf-8")
    except UnicodeDecodeError:
        text = tail.decode("cp1252", errors="replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[-1].startswith(CONTROL_MARKER):
        return None
    return parse_control_record(lines[-1])


def _de_amount(text: str) -> float | None:
    if not re.fullmatch(_NUM_DE + r"(,\d+)?", text.strip()):
        return None
    return float(text.strip().replace(".", "").replace(",", "."))


def sequence_blocks(extract_files: list[ExtractFile]) -> dict[str, str]:
    """source_file -> German message for every file that must wait for a missing predecessor.

    The sequence starts at the latest full extract (earlier gaps do not matter: the full supersedes
    them); every later sequence number must be present with all entity files. Files after the first gap
    are held back; the message names the missing file(s).
    """
    if not extract_files:
        return {}
    by_seq: dict[int, list[ExtractFile]] = {}
    for f in extract_files:
        by_seq.setdefault(f.seq, []).append(f)
    fulls = [s for s, fs in by_seq.items() if any(f.kind == "full" for f in fs)]
    start = max(fulls) if fulls else 0
    gap, missing = None, []
    for s in range(start, max(by_seq) + 1):
        present = {f.entity.name for f in by_seq.get(s, [])}
        absent = [e for e in ENTITIES if e.name not in present]
        if absent:
            gap = s
            missing = absent
            break
    if gap is None:
        return {}
    if by_seq.get(gap):
        ident = by_seq[gap][0].extract_id
        names = [f"{ident}_{e.file_token}.csv" for e in missing]
    else:
        ident = None
        successor = min(s for s in by_seq if s > gap)
        for f in by_seq[successor]:
            control = read_control_record(f.landed.path) or {}
            pred = control.get("Vorgaenger", "")
            if pred.startswith(f"zi_foerderung_{gap:03d}_"):
                ident = pred
                break
        kind = "voll" if gap == 0 else "delta"
        names = [
            f"{ident}_{e.file_token}.csv" if ident else f"zi_foerderung_{gap:03d}_{kind}_<Stichtag>_{e.file_token}.csv"
            for e in missing
        ]
    listed = ", ".join(names)
    one = len(names) == 1
    message = (
        f"Förderdaten-Lieferung zurückgehalten: In der Lieferfolge {'fehlt' if one else 'fehlen'} {listed} "
        f"(Lieferung Nr. {gap}). Spätere Deltas werden erst geladen, wenn "
        f"{'diese Datei vorliegt' if one else 'diese Dateien vorliegen'}; bitte nachliefern."
    )
    return {f.landed.source_file: message for f in extract_files if f.seq > gap}


@dataclass
class _Pending:
    """A file that passed the file-level checks and waits for the (batched) row validation."""

    xf: ExtractFile
    result: FileResult
    strings: pa.Table
    extract: dict
    control: dict[str, str]
    malformed: list[Rejection]  # rows that could not be read (stray byte, wrong number of fields)


def prepare_extract_file(xf: ExtractFile, predecessor: ExtractFile | None) -> FileResult | _Pending:
    """File-level checks (encoding, control record, order, headers, row count); a FileResult if it failed."""
    landed = xf.landed
    result = FileResult(
        SOURCE_FAMILY,
        landed.source_file,
        landed.file_hash,
        file_size_bytes=landed.size_bytes,
        period=xf.extract_id,
        primary_tables=(xf.entity.raw_table,),
    )
    name = Path(landed.source_file).name
    # Line by line (CR LF / LF only; UTF-8 with BOM, UTF-8 or Windows-1252): a line with a byte that is no
    # character is rejected as that row, the other rows are read.
    decoded = decode_lines(landed.path.read_bytes())
    lines = decoded.lines
    while lines and lines[-1] is not None and not lines[-1].strip():
        lines.pop()
    if not lines or lines[-1] is None or not lines[-1].startswith(CONTROL_MARKER):
        return result.fail(
            f"{name}: Datei unvollständig (abgeschnitten?): der Kontrollsatz '{CONTROL_MARKER}' am Dateiende "
            "fehlt. Bitte die Datei vollständig neu übertragen.",
            rule="control_record_missing",
        )
    control = parse_control_record(lines[-1])
    body_lines = lines[:-1]
    if control.get("Extrakt", "").lower() != xf.extract_id:
        return result.fail(
            f"{name}: Kontrollsatz nennt den Extrakt '{control.get('Extrakt')}', der Dateiname '{xf.extract_id}'. "
            "Datei umbenannt? Bitte unverändert liefern.",
            rule="control_record_mismatch",
        )
    if control.get("Stichtag") != f"{xf.as_of_date:%d.%m.%Y}":
        return result.fail(
            f"{name}: Stichtag im Kontrollsatz ({control.get('Stichtag')}) passt nicht zum Dateinamen "
            f"({xf.as_of_date:%d.%m.%Y}).",
            rule="control_record_mismatch",
        )
    if predecessor is not None and xf.kind == "delta":
        if control.get("Vorgaenger", "").lower() != predecessor.extract_id:
            return result.fail(
                f"{name}: Reihenfolge verletzt: der Kontrollsatz nennt als Vorgänger '{control.get('Vorgaenger')}', "
                f"geliefert ist als Lieferung Nr. {predecessor.seq} '{predecessor.extract_id}'.",
                rule="extract_out_of_order",
            )
        if predecessor.as_of_date >= xf.as_of_date:
            return result.fail(
                f"{name}: Reihenfolge verletzt: Stichtag {xf.as_of_date:%d.%m.%Y} liegt nicht nach dem Stichtag "
                f"des Vorgängers {predecessor.extract_id} ({predecessor.as_of_date:%d.%m.%Y}).",
                rule="extract_out_of_order",
            )
    if not body_lines:
        return result.fail(f"{name}: Kopfzeile fehlt.", rule="header_missing")
    if body_lines[0] is None:
        return result.fail(f"{name}: Kopfzeile nicht lesbar: {decoded.malformed[0].message_de}", rule="encoding_error")
    header = [h.strip().strip('"') for h in body_lines[0].split(";")]
    expected = xf.entity.headers
    unknown = [h for h in header if h not in expected]
    missing = [h for h in expected if h not in header]
    if unknown or missing or len(set(header)) != len(header):
        return result.fail(
            f"{name}: Spaltenköpfe passen nicht zur Extraktbeschreibung. Unbekannt: {quoted(unknown)}; "
            f"fehlend: {quoted(missing)}.",
            rule="unknown_header",
        )
    try:  # a row with more or fewer fields than the header is rejected as that row
        strings, malformed = rows_from_lines(body_lines[1:], header, ";")
    except pa.ArrowInvalid as exc:
        return result.fail(f"{name}: CSV nicht lesbar: {exc}", rule="file_unreadable")
    malformed = sorted(
        [r for r in decoded.malformed if r.row_number < len(lines)] + malformed, key=lambda r: r.row_number
    )
    result.rows_read = strings.num_rows + len(malformed)
    try:
        expected_rows = int(control.get("Saetze", ""))
    except ValueError:
        expected_rows = None
    if expected_rows != result.rows_read:
        return result.fail(
            f"{name}: Kontrollsatz meldet {control.get('Saetze')} Datensätze, die Datei enthält "
            f"{result.rows_read}. Datei unvollständig oder verändert; bitte neu liefern.",
            rule="control_count_mismatch",
        )
    strings = strings.rename_columns([expected[h].name for h in header] + ["_row_number"])
    extract = {
        "extract_id": xf.extract_id,
        "extract_channel": "file",
        "extract_kind": xf.kind,
        "extract_seq": xf.seq,
        "extract_as_of": xf.as_of,
    }
    return _Pending(xf, result, strings, extract, control, malformed)


def finish_extract_file(pending: _Pending, validated: Validated) -> FileResult:
    """Row-level outcome plus the control-total check (which needs the typed amounts)."""
    xf, result, control, extract = pending.xf, pending.result, pending.control, pending.extract
    name = Path(xf.landed.source_file).name
    control_total = _de_amount(control.get("Summe", ""))
    # the amounts of unreadable rows are unknown: the control total cannot be checked then
    if (
        validated.control_total is not None
        and not pending.malformed
        and (control_total is None or abs(float(validated.control_total) - control_total) > 0.005)
    ):
        return result.fail(
            f"{name}: Kontrollsumme '{xf.entity.column(xf.entity.control_column).header_de}' stimmt nicht: "
            f"Kontrollsatz {control.get('Summe')}, Datei {format_number(float(validated.control_total), 2)}. "
            "Bitte neu liefern.",
            rule="control_sum_mismatch",
        )
    result.tables = {xf.entity.raw_table: with_source_file(validated.table, result.source_file)}
    if xf.kind == "full":
        result.tables[KEY_LIST_TABLE] = with_source_file(
            key_list_table(xf.entity, validated.keys, extract), result.source_file
        )
    result.rejections = pending.malformed + validated.rejections
    return result


def read_files(files: list[LandedFile], context) -> Iterable[FileResult]:
    """The source contract: one FileResult per file in ``files``.

    The delta sequence is judged on everything now in the landing folder (``context.all_files``), so a
    file read again because it was held back is released as soon as its missing predecessor arrives.
    Rows of all files of one entity are validated in one DuckDB pass.
    """
    catalogue = {}
    for landed in context.all_files:
        xf = parse_file_name(landed)
        if xf is not None:
            catalogue[landed.source_file] = xf
    blocks = sequence_blocks(list(catalogue.values()))
    by_seq_entity = {(x.seq, x.entity.name): x for x in catalogue.values()}
    pending: list[_Pending] = []
    for landed in files:
        xf = catalogue.get(landed.source_file)
        if xf is None:
            yield FileResult(
                SOURCE_FAMILY, landed.source_file, landed.file_hash, file_size_bytes=landed.size_bytes
            ).fail(
                f"{Path(landed.source_file).name}: kein Förderdaten-Extrakt (erwartet "
                "zi_foerderung_<Nr>_<voll|delta>_<JJJJMMTT>_<antraege|bescheide|aenderungen|zahlungen|massnahmen>.csv).",
                rule="unknown_file_name",
            )
            continue
        if landed.source_file in blocks:
            yield FileResult(
                SOURCE_FAMILY,
                landed.source_file,
                landed.file_hash,
                file_size_bytes=landed.size_bytes,
                period=xf.extract_id,
            ).block(blocks[landed.source_file], rule="delta_sequence_gap")
            continue
        prepared = prepare_extract_file(xf, by_seq_entity.get((xf.seq - 1, xf.entity.name)))
        if isinstance(prepared, FileResult):
            yield prepared
        else:
            pending.append(prepared)
    for entity in ENTITIES:
        group = [p for p in pending if p.xf.entity is entity]
        validated = validate(entity, [(p.strings, p.extract) for p in group], "de")
        for item, checked in zip(group, validated):
            yield finish_extract_file(item, checked)


def read_extract_file(xf: ExtractFile, predecessor: ExtractFile | None = None) -> FileResult:
    """Read one extract file on its own (tests, diagnostics); ``read_files`` batches many."""
    prepared = prepare_extract_file(xf, predecessor)
    if isinstance(prepared, FileResult):
        return prepared
    return finish_extract_file(prepared, validate(xf.entity, [(prepared.strings, prepared.extract)], "de")[0])
