"""Source family ``climate``: DWD daily station data and the RVR climate-analysis area statistics.

Belongs here: recognising what landed in ``landing/climate/`` and turning each file into raw rows or
rejections (the format details of DWD files are in ``zi_warehouse.dwd``):

- ``tageswerte_KL_<id>_<from>_<to>_hist.zip`` / ``tageswerte_KL_<id>_akt.zip``: DWD archives; the
  ``produkt_klima_tag_*.txt`` member is loaded into ``raw.climate__daily`` (``_sheet`` = member name),
  the metadata members (``Metadaten_*``) are documentation and are not loaded;
- bare ``produkt_klima_tag_<from>_<to>_<id>.txt`` files (as extracted from an archive);
- ``KL_Tageswerte_Beschreibung_Stationen.txt``: the station list -> ``raw.climate__stations``;
- ``*.csv`` with the RVR climate-analysis header -> ``raw.climate__area_statistics`` (format in
  docs/climate-data.md).

Every raw row of every delivery is kept with its lineage. Historical and recent archives overlap; the
overlap is resolved in dbt (``int_climate__daily``: historical before bare file before recent, later
delivery first within a kind), so a new recent archive only adds or corrects days.

Also here: the SQL checks over the loaded climate data (station list usable, plausible daily values,
no duplicate day after dedup, data age) that ``dagster_zi.climate`` runs as asset checks.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable

import pyarrow as pa

from zi_warehouse import dwd
from zi_warehouse.accounting import FileResult, Rejection
from zi_warehouse.landing import LandedFile
from zi_warehouse.reference import match_municipality, normalise_name
from zi_warehouse.warehouse import table_exists

SOURCE_FAMILY = "climate"

AREA_STATISTICS_SCHEMA = pa.schema(
    [
        pa.field("municipality_name", pa.string()),  # as sent (Gemeinde)
        pa.field("municipality_key", pa.string()),
        pa.field("area_type", pa.string()),  # municipality | designated_area
        pa.field("area_name", pa.string()),
        pa.field("topic", pa.string()),  # climatope | heavy_rain_rare | heavy_rain_extreme
        pa.field("class_code", pa.string()),
        pa.field("class_label", pa.string()),  # as sent (Klasse)
        pa.field("area_ha", pa.float64()),
        pa.field("heat_stressed_area_ha", pa.float64()),  # climatope rows only
    ]
)

RAW_TABLES = {
    "climate__daily": dwd.DAILY_SCHEMA,
    "climate__stations": dwd.STATIONS_SCHEMA,
    "climate__area_statistics": AREA_STATISTICS_SCHEMA,
}

#: Header of the RVR climate-analysis statistics CSV (``;``, decimal comma, UTF-8 or Windows-1252).
AREA_HEADER = ["Gemeinde", "Gebietsart", "Gebiet", "Thema", "Klasse", "Flaeche_ha", "davon_waermebelastet_ha"]
AREA_TYPES = {"gemeinde": "municipality", "gestaltungsraum": "designated_area"}
TOPICS = {"klimatop": "climatope", "starkregen selten": "heavy_rain_rare", "starkregen extrem": "heavy_rain_extreme"}
#: Climate-zone classes (Klimatope) per VDI 3787 Blatt 1 as the RVR climate analysis names them.
#: ``is_heat_burdened``: the classes the RVR counts as thermally burdened settlement climates.
CLIMATOPES = {
    "Gewässerklima": "water",
    "Freilandklima": "open_land",
    "Waldklima": "forest",
    "Parkklima": "park",
    "Vorstadtklima": "suburban",
    "Stadtrandklima": "city_edge",
    "Stadtklima": "city",
    "Innenstadtklima": "inner_city",
    "Gewerbe- und Industrieklima": "commercial_industrial",
}
#: Water-depth classes of the heavy-rain hazard map (rare = 100-year event, extreme = 90 mm/h).
WATER_DEPTHS = {
    "0,10-0,30 m": "depth_010_030",
    "0,30-0,50 m": "depth_030_050",
    "0,50-1,00 m": "depth_050_100",
    "> 1,00 m": "depth_gt_100",
}


def _classes_for(topic: str) -> dict[str, str]:
    table = CLIMATOPES if topic == "climatope" else WATER_DEPTHS
    return {normalise_name(k): v for k, v in table.items()}


def _result(f: LandedFile) -> FileResult:
    return FileResult(SOURCE_FAMILY, f.source_file, f.file_hash, file_size_bytes=f.size_bytes)


def _daily(result: FileResult, data: bytes, member: str, kind: str, sheet: str | None) -> FileResult:
    parsed = dwd.parse_product(data, member, kind, sheet)
    if parsed.error_message:
        return result.fail(parsed.error_message, "dwd_product_header")
    table = parsed.table.set_column(
        parsed.table.schema.get_field_index("_source_file"),
        "_source_file",
        pa.array([result.source_file] * parsed.table.num_rows, pa.string()),
    )
    result.tables = {"climate__daily": table}
    result.primary_tables = ("climate__daily",)
    result.rows_read = parsed.rows_read
    result.rejections = parsed.rejections
    m = dwd.PRODUCT_RE.match(member.rsplit("/", 1)[-1])
    result.period = f"{m.group(1)}-{m.group(2)}" if m else None
    return result


def read_archive(f: LandedFile) -> FileResult:
    result = _result(f)
    name = f.path.name
    hist, recent = dwd.HIST_ZIP_RE.match(name), dwd.RECENT_ZIP_RE.match(name)
    if not (hist or recent):
        return result.fail(
            f"Unbekanntes Archiv '{name}': erwartet werden DWD-Archive tageswerte_KL_<Kennung>_<von>_<bis>_hist.zip "
            "oder tageswerte_KL_<Kennung>_akt.zip.",
            "dwd_archive_name",
        )
    try:
        with zipfile.ZipFile(f.path) as zf:
            members = [m for m in zf.namelist() if dwd.PRODUCT_RE.match(m.rsplit("/", 1)[-1])]
            if len(members) != 1:
                return result.fail(
                    f"Das Archiv enthält {len(members)} Dateien produkt_klima_tag_*.txt statt genau einer.",
                    "dwd_archive_product",
                )
            member = members[0]
            data = zf.read(member)
    except zipfile.BadZipFile:
        return result.fail(
            f"'{name}' ist kein lesbares ZIP-Archiv (beschädigt oder unvollständig übertragen).", "file_unreadable"
        )
    station = int((hist or recent).group(1))
    if dwd.product_station(member) != station:
        return result.fail(
            f"Die Produktdatei {member} gehört zu einer anderen Station als das Archiv {name}.", "dwd_archive_station"
        )
    return _daily(result, data, member, "historical" if hist else "recent", member)


def read_station_list(f: LandedFile) -> FileResult:
    result = _result(f)
    parsed = dwd.parse_station_list(f.path.read_bytes())
    if parsed.error_message:
        return result.fail(parsed.error_message, "dwd_station_list_header")
    table = parsed.table.append_column("_source_file", pa.array([f.source_file] * parsed.table.num_rows, pa.string()))
    result.tables = {"climate__stations": table}
    result.primary_tables = ("climate__stations",)
    result.rows_read = parsed.rows_read
    result.rejections = parsed.rejections
    return result


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252")  # an export saved by Excel on Windows


def _number(text: str | None) -> float | None:
    """German decimal: '1.234,5' -> 1234.5; '' -> None; anything else raises ValueError."""
    text = (text or "").strip()
    if not text:
        return None
    if not re.fullmatch(r"-?\d{1,3}(\.\d{3})*(,\d+)?|-?\d+(,\d+)?", text):
        raise ValueError(text)
    return float(text.replace(".", "").replace(",", "."))


def read_area_statistics(f: LandedFile) -> FileResult:
    """The RVR climate-analysis statistics CSV (a few hundred rows: a plain loop over rows is fine)."""
    result = _result(f)
    text = _decode(f.path.read_bytes())
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    header = [c.strip() for c in records[0]] if records else []
    if [h.lower() for h in header] != [h.lower() for h in AREA_HEADER]:
        missing = [h for h in AREA_HEADER if h.lower() not in {x.lower() for x in header}]
        extra = [h for h in header if h.lower() not in {x.lower() for x in AREA_HEADER}]
        return result.fail(
            "Unbekannte Kopfzeile der Klimaanalyse-Statistik: fehlend "
            + (", ".join(missing) or "–")
            + "; unerwartet "
            + (", ".join(extra) or "–")
            + "; erwartet "
            + ";".join(AREA_HEADER),
            "area_statistics_header",
        )
    rows = []
    for i, rec in enumerate(records[1:]):
        if not any(v.strip() for v in rec):
            continue  # an empty line (Excel appends some) holds no row
        if len(rec) != len(AREA_HEADER):
            result.rejections.append(
                Rejection(
                    i + 2,
                    None,
                    ";".join(rec),
                    "field_count",
                    f"Die Zeile hat {len(rec)} statt {len(AREA_HEADER)} Felder.",
                )
            )
            rows.append(None)
            continue
        rows.append((i + 2, dict(zip(AREA_HEADER, rec))))
    good, seen = [], set()
    for item in rows:
        if item is None:
            continue
        row_no, r = item
        errors: list[Rejection] = []

        def err(column, value, rule, message, errors=errors, row_no=row_no):
            errors.append(Rejection(row_no, column, value, rule, message))

        key = match_municipality(r["Gemeinde"])
        if key is None:
            err(
                "Gemeinde",
                r["Gemeinde"],
                "municipality_known",
                "Gemeinde nicht erkannt; bitte den amtlichen Namen einer RVR-Kommune verwenden.",
            )
        area_type = AREA_TYPES.get(normalise_name(r["Gebietsart"]))
        if area_type is None:
            err(
                "Gebietsart",
                r["Gebietsart"],
                "area_type_known",
                "Gebietsart muss 'Gemeinde' oder 'Gestaltungsraum' sein.",
            )
        area_name = r["Gebiet"].strip()
        if not area_name:
            err("Gebiet", r["Gebiet"], "area_name_present", "Der Name des Gebiets fehlt.")
        topic = TOPICS.get(normalise_name(r["Thema"]))
        class_code = None
        if topic is None:
            err(
                "Thema",
                r["Thema"],
                "topic_known",
                "Thema muss 'Klimatop', 'Starkregen selten' oder 'Starkregen extrem' sein.",
            )
        else:
            class_code = _classes_for(topic).get(normalise_name(r["Klasse"]))
            if class_code is None:
                allowed = ", ".join(CLIMATOPES if topic == "climatope" else WATER_DEPTHS)
                err("Klasse", r["Klasse"], "class_known", f"Unbekannte Klasse für {r['Thema']}; erlaubt: {allowed}.")
        area = heat = None
        try:
            area = _number(r["Flaeche_ha"])
            if area is None or area < 0:
                err("Flaeche_ha", r["Flaeche_ha"], "area_non_negative", "Fläche in ha fehlt oder ist negativ.")
        except ValueError:
            err("Flaeche_ha", r["Flaeche_ha"], "number", "Fläche in ha ist keine Zahl (Dezimalkomma, z. B. 12,5).")
        try:
            heat = _number(r["davon_waermebelastet_ha"])
            if heat is not None and (heat < 0 or (area is not None and heat > area + 1e-9)):
                err(
                    "davon_waermebelastet_ha",
                    r["davon_waermebelastet_ha"],
                    "heat_le_area",
                    "Die wärmebelastete Fläche muss zwischen 0 und der Fläche der Klasse liegen.",
                )
            if heat is not None and topic not in (None, "climatope"):
                err(
                    "davon_waermebelastet_ha",
                    r["davon_waermebelastet_ha"],
                    "heat_only_for_climatope",
                    "Wärmebelastete Fläche wird nur für Klimatope angegeben; bei Starkregen bitte leer lassen.",
                )
        except ValueError:
            err(
                "davon_waermebelastet_ha",
                r["davon_waermebelastet_ha"],
                "number",
                "Wärmebelastete Fläche ist keine Zahl (Dezimalkomma, z. B. 12,5).",
            )
        ident = (key, area_type, normalise_name(area_name), topic, class_code)
        if not errors and ident in seen:
            err(
                "Klasse",
                r["Klasse"],
                "duplicate_class",
                "Diese Klasse steht für dieses Gebiet und Thema bereits weiter oben in der Datei.",
            )
        if errors:
            result.rejections.extend(errors)
            continue
        seen.add(ident)
        good.append(
            {
                "municipality_name": r["Gemeinde"].strip(),
                "municipality_key": key,
                "area_type": area_type,
                "area_name": area_name,
                "topic": topic,
                "class_code": class_code,
                "class_label": r["Klasse"].strip(),
                "area_ha": area,
                "heat_stressed_area_ha": heat if topic == "climatope" else None,
                "_source_file": f.source_file,
                "_sheet": None,
                "_row_number": row_no,
            }
        )
    result.rows_read = len(rows)
    schema = pa.schema(
        list(AREA_STATISTICS_SCHEMA)
        + [pa.field("_source_file", pa.string()), pa.field("_sheet", pa.string()), pa.field("_row_number", pa.int64())]
    )
    result.tables = {"climate__area_statistics": pa.Table.from_pylist(good, schema=schema)}
    result.primary_tables = ("climate__area_statistics",)
    return result


# ------------------------------------------------------------------ checks over the loaded climate data
# Plain functions over a warehouse connection; dagster_zi.climate turns them into asset checks.

#: Physical ranges for a German station (°C, mm); values outside are almost surely errors.
PLAUSIBLE_RANGES = {
    "txk": (-35.0, 45.0),
    "tnk": (-40.0, 35.0),
    "tmk": (-38.0, 40.0),
    "rsk": (0.0, 320.0),  # German daily record: 312 mm (Zinnwald-Georgenfeld, 2002)
}


def station_list_problems(con) -> list[str]:
    """Why the station list cannot be relied on (empty list: it can)."""
    if not table_exists(con, "raw", "climate__stations"):
        return ["raw.climate__stations fehlt: der Klima-Eingang wurde noch nicht geladen"]
    problems = []
    files = con.execute(
        "select source_file, outcome, rows_rejected, error_message from raw.ingestion_files "
        "where source_family = 'climate' and regexp_matches(lower(file_name), '^kl_tageswerte_beschreibung_stationen')"
    ).fetchall()
    if not files:
        problems.append("Keine DWD-Stationsliste (KL_Tageswerte_Beschreibung_Stationen.txt) im Eingang")
    for source_file, outcome, rejected, message in files:
        if outcome == "failed":
            problems.append(f"{source_file}: nicht lesbar ({message})")
        elif rejected:
            problems.append(f"{source_file}: {rejected} Zeilen abgewiesen")
    unlisted = con.execute(
        "select distinct d.station_id from raw.climate__daily d "
        "anti join raw.climate__stations s using (station_id) order by 1"
    ).fetchall()
    if unlisted:
        problems.append(
            "Stationen mit Tageswerten, aber ohne Eintrag in der Stationsliste: "
            + ", ".join(f"{r[0]:05d}" for r in unlisted[:20])
        )
    return problems


def implausible_daily_values(con, limit: int = 20) -> tuple[int, list[tuple]]:
    """(count, examples) of raw daily values outside PLAUSIBLE_RANGES or with TNK above TXK."""
    if not table_exists(con, "raw", "climate__daily"):
        return 0, []
    conditions = [f"{c} not between {lo} and {hi}" for c, (lo, hi) in PLAUSIBLE_RANGES.items()]
    conditions.append("tnk > txk")
    where = " or ".join(f"({c})" for c in conditions)
    count = con.execute(f"select count(*) from raw.climate__daily where {where}").fetchone()[0]
    examples = con.execute(
        f"select station_id, measured_on, txk, tnk, tmk, rsk, _source_file, _row_number "
        f"from raw.climate__daily where {where} order by station_id, measured_on limit {int(limit)}"
    ).fetchall()
    return int(count), examples


def duplicate_days(con, limit: int = 20) -> tuple[int, list[tuple]]:
    """(count, examples) of (station, day) pairs that occur more than once after deduplication."""
    if not table_exists(con, "intermediate", "int_climate__daily"):
        return 0, []
    rows = con.execute(
        "select station_id, measured_on, count(*) from intermediate.int_climate__daily "
        "group by 1, 2 having count(*) > 1 order by 1, 2"
    ).fetchall()
    return len(rows), rows[:limit]


def data_age_days(con, today: dt.date) -> int | None:
    """Days between today and the newest daily value of any station (None without data)."""
    if not table_exists(con, "raw", "climate__daily"):
        return None
    newest = con.execute("select max(measured_on) from raw.climate__daily").fetchone()[0]
    return None if newest is None else (today - newest).days


def read_file(f: LandedFile) -> FileResult:
    name = f.path.name
    try:
        if name.lower().endswith(".zip"):
            return read_archive(f)
        if dwd.PRODUCT_RE.match(name):
            return _daily(_result(f), f.path.read_bytes(), name, "product_file", None)
        if dwd.STATION_LIST_RE.match(name):
            return read_station_list(f)
        if name.lower().endswith(".csv"):
            return read_area_statistics(f)
    except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
        return _result(f).fail(f"Die Datei '{name}' ist nicht lesbar: {exc}", "file_unreadable")
    return _result(f).fail(
        f"Unbekannte Datei '{name}' im Klima-Eingang: erwartet werden DWD-Archive (tageswerte_KL_*.zip), "
        "produkt_klima_tag_*.txt, die Stationsliste KL_Tageswerte_Beschreibung_Stationen.txt oder die "
        "Klimaanalyse-Statistik des RVR (*.csv).",
        "unknown_file",
    )


def read_files(files: list[LandedFile], context) -> Iterable[FileResult]:
    for f in files:
        yield read_file(f)
