"""The DWD daily climate ("KL") file formats: parse and render them, nothing else.

Belongs here: the product file ``produkt_klima_tag_<from>_<to>_<id>.txt`` (``;``-separated, padded,
CRLF, ``-999`` = missing, every line ends with ``eor``), the archive names of the Climate Data Center
(``tageswerte_KL_<id>_<from>_<to>_hist.zip``, ``tageswerte_KL_<id>_akt.zip``), the fixed-width
ISO-8859-1 station list ``KL_Tageswerte_Beschreibung_Stationen.txt``, and the writers the demo and the
tests use to produce byte-exact look-alikes. No warehouse, no landing folder, no Dagster: the source
module ``zi_warehouse.sources.climate`` wires these into the ingest contract.

Parsing is vectorised with Arrow: the bytes are read as one string per line (so the line number a
person sees in an editor is exact), split on ``;``, trimmed and validated column by column. Python only
loops over the rows that fail, to describe each failure.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from zi_warehouse.accounting import Rejection

#: Header of the product file, in order (DWD pads some names with spaces; we compare trimmed names).
PRODUCT_COLUMNS = [
    "STATIONS_ID",
    "MESS_DATUM",
    "QN_3",
    "FX",
    "FM",
    "QN_4",
    "RSK",
    "RSKF",
    "SDK",
    "SHK_TAG",
    "NM",
    "VPM",
    "PM",
    "TMK",
    "UPM",
    "TXK",
    "TNK",
    "TGK",
    "eor",
]
#: The header line exactly as the DWD writes it.
PRODUCT_HEADER = (
    "STATIONS_ID;MESS_DATUM;QN_3;  FX;  FM;QN_4; RSK;RSKF; SDK;SHK_TAG;  NM; VPM;  PM; TMK; UPM; TXK; TNK; TGK;eor"
)
#: Integer columns: quality levels QN_3/QN_4, precipitation form RSKF (code 0-9), snow depth SHK_TAG (cm).
INTEGER_COLUMNS = ("QN_3", "QN_4", "RSKF", "SHK_TAG")
#: Decimal columns and what they hold (DWD "Metadaten_Parameter_klima_tag"):
#: FX/FM wind max/mean (m/s), RSK precipitation (mm), SDK sunshine (h), NM cloud cover (1/8),
#: VPM vapour pressure (hPa), PM air pressure (hPa), TMK/TXK/TNK mean/max/min air temperature 2 m (°C),
#: UPM relative humidity (%), TGK minimum temperature 5 cm above ground (°C).
DECIMAL_COLUMNS = ("FX", "FM", "RSK", "SDK", "NM", "VPM", "PM", "TMK", "UPM", "TXK", "TNK", "TGK")
#: Up to 3 decimals (SDK has 3, PM and UPM 2, the rest 1) and up to 5 integer digits: decimal(9,3) holds
#: every value exactly, so sums in SQL are exact too.
DECIMAL_TYPE = pa.decimal128(9, 3)
MISSING = -999

HIST_ZIP_RE = re.compile(r"^tageswerte_KL_(\d{5})_(\d{8})_(\d{8})_hist\.zip$", re.IGNORECASE)
RECENT_ZIP_RE = re.compile(r"^tageswerte_KL_(\d{5})_akt\.zip$", re.IGNORECASE)
PRODUCT_RE = re.compile(r"^produkt_klima_tag_(\d{8})_(\d{8})_(\d{5})\.txt$", re.IGNORECASE)
STATION_LIST_NAME = "KL_Tageswerte_Beschreibung_Stationen.txt"
STATION_LIST_RE = re.compile(r"^KL_Tageswerte_Beschreibung_Stationen.*\.txt$", re.IGNORECASE)

#: Raw daily rows (lower-case DWD names; staging gives them meaningful names and units).
DAILY_SCHEMA = pa.schema(
    [
        pa.field("station_id", pa.int32()),
        pa.field("measured_on", pa.date32()),
        pa.field("qn_3", pa.int32()),
        pa.field("fx", DECIMAL_TYPE),
        pa.field("fm", DECIMAL_TYPE),
        pa.field("qn_4", pa.int32()),
        pa.field("rsk", DECIMAL_TYPE),
        pa.field("rskf", pa.int32()),
        pa.field("sdk", DECIMAL_TYPE),
        pa.field("shk_tag", pa.int32()),
        pa.field("nm", DECIMAL_TYPE),
        pa.field("vpm", DECIMAL_TYPE),
        pa.field("pm", DECIMAL_TYPE),
        pa.field("tmk", DECIMAL_TYPE),
        pa.field("upm", DECIMAL_TYPE),
        pa.field("txk", DECIMAL_TYPE),
        pa.field("tnk", DECIMAL_TYPE),
        pa.field("tgk", DECIMAL_TYPE),
        # historical | recent | product_file: which kind of delivery the row came in (dedup priority)
        pa.field("delivery_kind", pa.string()),
        # last day the product file covers (from its name): among deliveries of one kind the later wins
        pa.field("delivery_period_end", pa.date32()),
    ]
)

STATIONS_SCHEMA = pa.schema(
    [
        pa.field("station_id", pa.int32()),
        pa.field("valid_from", pa.date32()),
        pa.field("valid_to", pa.date32()),
        pa.field("station_height_m", pa.int32()),
        pa.field("latitude", pa.float64()),
        pa.field("longitude", pa.float64()),
        pa.field("station_name", pa.string()),
        pa.field("federal_state", pa.string()),
    ]
)


@dataclass
class Parsed:
    """What a parser made of one file's bytes."""

    table: pa.Table | None
    rows_read: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    error_message: str | None = None  # the whole file is unusable (header, encoding)


def _lines(data: bytes, encoding: str) -> pa.StringArray:
    """One string per physical line (CRLF or LF), blank lines kept, so index + 1 is the line number."""
    if not data:
        return pa.array([], pa.string())
    table = pcsv.read_csv(
        io.BytesIO(data),
        read_options=pcsv.ReadOptions(column_names=["line"], encoding=encoding, block_size=1 << 24),
        # \x1f (unit separator) never occurs in these text files: every line becomes one field
        parse_options=pcsv.ParseOptions(
            delimiter="\x1f", quote_char=False, escape_char=False, ignore_empty_lines=False
        ),
        convert_options=pcsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
    )
    return table.column("line").combine_chunks()


def parse_yyyymmdd(values: pa.Array) -> pa.Array:
    """date32 for valid YYYYMMDD strings, NULL otherwise (Arrow's strptime rolls 19500230 over: re-check)."""
    well_formed = pc.match_substring_regex(values, r"^\d{8}$")
    ts = pc.strptime(
        pc.if_else(well_formed, values, pa.scalar(None, pa.string())), format="%Y%m%d", unit="s", error_is_null=True
    )
    back = pc.strftime(ts, format="%Y%m%d")
    exact = pc.fill_null(pc.equal(back, values), False)
    return pc.if_else(exact, pc.cast(ts, pa.date32()), pa.scalar(None, pa.date32()))


def _date_from_name(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def product_period_end(member_name: str) -> dt.date | None:
    m = PRODUCT_RE.match(member_name.rsplit("/", 1)[-1])
    return _date_from_name(m.group(2)) if m else None


def product_station(member_name: str) -> int | None:
    m = PRODUCT_RE.match(member_name.rsplit("/", 1)[-1])
    return int(m.group(3)) if m else None


_MESSAGES = {
    "field_count": "Die Zeile hat {found} statt 19 durch ';' getrennte Felder; bitte die Zeile vollständig "
    "im DWD-Format liefern (STATIONS_ID bis eor).",
    "end_of_record": "Die Zeile endet nicht mit 'eor'; die Zeile ist vermutlich abgeschnitten.",
    "station_id_integer": "STATIONS_ID ist keine ganze Zahl.",
    "station_id_matches_file": "STATIONS_ID weicht von der Stationskennung im Dateinamen ab.",
    "date_yyyymmdd": "MESS_DATUM ist kein gültiges Datum im Format JJJJMMTT.",
    "integer": "Der Wert in {column} ist keine ganze Zahl (fehlend wird als -999 geliefert).",
    "decimal": "Der Wert in {column} ist keine Zahl mit Dezimalpunkt und höchstens 3 Nachkommastellen "
    "(fehlend wird als -999 geliefert).",
    "duplicate_date": "Für diese Station und dieses Datum steht bereits eine Zeile weiter oben in der Datei.",
}


def parse_product(data: bytes, member_name: str, delivery_kind: str, sheet: str | None = None) -> Parsed:
    """Parse a ``produkt_klima_tag_*.txt`` file's bytes into ``DAILY_SCHEMA`` rows plus rejections.

    ``member_name`` is the product file name (checks the station id); ``sheet`` goes into rejections
    and the ``_sheet`` lineage column (the zip member, NULL for a bare file).
    """
    lines = _lines(data, "latin-1")  # the files are ASCII; latin-1 never fails on a stray byte
    if len(lines) == 0:
        return Parsed(
            None,
            error_message="Die Datei ist leer; erwartet wird die Kopfzeile "
            "STATIONS_ID;MESS_DATUM;...;eor und eine Zeile je Tag.",
        )
    header = [h.strip().lstrip("\ufeffï»¿") for h in lines[0].as_py().split(";")]
    if [h.upper() for h in header] != [c.upper() for c in PRODUCT_COLUMNS]:
        missing = [c for c in PRODUCT_COLUMNS if c.upper() not in {h.upper() for h in header}]
        extra = [h for h in header if h.upper() not in {c.upper() for c in PRODUCT_COLUMNS}]
        return Parsed(
            None,
            error_message=(
                "Unbekannte Kopfzeile der DWD-Tageswerte: fehlend "
                + (", ".join(missing) or "–")
                + "; unerwartet "
                + (", ".join(extra) or "–")
                + "; erwartet "
                + ";".join(PRODUCT_COLUMNS)
            ),
        )
    body = lines[1:]
    numbers = np.arange(2, len(body) + 2, dtype=np.int64)  # line 1 is the header
    not_blank = pc.invert(pc.match_substring_regex(body, r"^\s*$"))  # a blank line holds no day
    body = body.filter(not_blank)
    numbers = numbers[np.asarray(not_blank.to_numpy(zero_copy_only=False), dtype=bool)]
    rows_read = len(body)
    rejections: list[Rejection] = []
    parts = pc.split_pattern(body, ";")
    counts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    bad_count = counts != len(PRODUCT_COLUMNS)
    for i in np.flatnonzero(bad_count):
        rejections.append(
            Rejection(
                int(numbers[i]),
                None,
                body[i].as_py(),
                "field_count",
                _MESSAGES["field_count"].format(found=int(counts[i])),
                sheet,
            )
        )
    keep = ~bad_count
    parts = parts.filter(pa.array(keep))
    row_numbers = numbers[keep]

    def reject(mask: np.ndarray, column: str, values: pa.Array, rule: str) -> None:
        # Python only loops over the failing rows, to describe each one
        for i in np.flatnonzero(mask):
            rejections.append(
                Rejection(
                    int(row_numbers[i]), column, values[i].as_py(), rule, _MESSAGES[rule].format(column=column), sheet
                )
            )

    cols = {name: pc.utf8_trim_whitespace(pc.list_element(parts, i)) for i, name in enumerate(PRODUCT_COLUMNS)}
    bad = np.zeros(len(parts), dtype=bool)

    def check(mask_arr: pa.Array, column: str, rule: str) -> None:
        nonlocal bad
        mask = np.asarray(pc.fill_null(mask_arr, True).to_numpy(zero_copy_only=False), dtype=bool)
        reject(mask, column, cols[column], rule)
        bad |= mask

    check(pc.not_equal(cols["eor"], "eor"), "eor", "end_of_record")
    id_ok = pc.match_substring_regex(cols["STATIONS_ID"], r"^\d{1,9}$")
    check(pc.invert(id_ok), "STATIONS_ID", "station_id_integer")
    expected_station = product_station(member_name)
    station = pc.cast(pc.if_else(id_ok, cols["STATIONS_ID"], pa.scalar(None, pa.string())), pa.int32())
    if expected_station is not None:
        check(pc.and_(id_ok, pc.not_equal(station, expected_station)), "STATIONS_ID", "station_id_matches_file")
    dates = parse_yyyymmdd(cols["MESS_DATUM"])
    check(pc.is_null(dates), "MESS_DATUM", "date_yyyymmdd")
    typed = {}
    for name in INTEGER_COLUMNS:
        ok = pc.match_substring_regex(cols[name], r"^-?\d{1,6}$")
        check(pc.invert(ok), name, "integer")
        typed[name] = pc.cast(pc.if_else(ok, cols[name], pa.scalar(None, pa.string())), pa.int32())
    for name in DECIMAL_COLUMNS:
        ok = pc.match_substring_regex(cols[name], r"^-?\d{1,6}(\.\d{1,3})?$")
        check(pc.invert(ok), name, "decimal")
        typed[name] = pc.cast(pc.if_else(ok, cols[name], pa.scalar(None, pa.string())), DECIMAL_TYPE)
    # A day twice in one file: the first line counts, later ones are rejected (not silently merged).
    good_idx = np.flatnonzero(~bad)
    if len(good_idx):
        day_num = pc.cast(dates, pa.int32()).to_numpy(zero_copy_only=False)[good_idx].astype(np.int64)
        key = station.to_numpy(zero_copy_only=False)[good_idx].astype(np.int64) * 1_000_000 + day_num
        _, first = np.unique(key, return_index=True)
        dup = np.ones(len(good_idx), dtype=bool)
        dup[first] = False
        dup_mask = np.zeros(len(parts), dtype=bool)
        dup_mask[good_idx[dup]] = True
        reject(dup_mask, "MESS_DATUM", cols["MESS_DATUM"], "duplicate_date")
        bad |= dup_mask
    good = pa.array(~bad)

    def missing_to_null(name):
        # -999 (also written -999.0 or -999.000) is the DWD's marker for "no value"
        is_missing = pc.match_substring_regex(cols[name], r"^-999(\.0+)?$")
        return pc.if_else(is_missing, pa.scalar(None, typed[name].type), typed[name])

    out = {"station_id": station.filter(good), "measured_on": dates.filter(good)}
    for name in INTEGER_COLUMNS + DECIMAL_COLUMNS:
        out[name.lower()] = missing_to_null(name).filter(good)
    n = int(np.count_nonzero(~bad))
    out["delivery_kind"] = pa.array([delivery_kind] * n, pa.string())
    out["delivery_period_end"] = pa.array([product_period_end(member_name)] * n, pa.date32())
    out["_source_file"] = pa.nulls(n, pa.string())
    out["_sheet"] = pa.array([sheet] * n, pa.string())
    out["_row_number"] = pa.array(row_numbers[~bad], pa.int64())
    schema = pa.schema(
        list(DAILY_SCHEMA)
        + [pa.field("_source_file", pa.string()), pa.field("_sheet", pa.string()), pa.field("_row_number", pa.int64())]
    )
    table = pa.Table.from_arrays([out[f.name] for f in schema], schema=schema)
    return Parsed(table, rows_read=rows_read, rejections=rejections)


_STATION_LINE = (
    r"^(?P<station_id>\d{1,5}) +(?P<valid_from>\d{8}) +(?P<valid_to>\d{8}) +(?P<height>-?\d+) +"
    r"(?P<latitude>-?\d{1,3}\.\d+) +(?P<longitude>-?\d{1,3}\.\d+) (?P<rest>.*)$"
)
#: Width of the Stationsname column in the data lines (the dashes under the header say 41; the data
#: lines really start the name in column 62 and the state 41 characters later: the DWD's underline
#: does not match its own data, so positions come from the data, not from the underline).
STATION_NAME_WIDTH = 41


def parse_station_list(data: bytes) -> Parsed:
    """Parse ``KL_Tageswerte_Beschreibung_Stationen.txt`` (fixed width, ISO-8859-1, CRLF)."""
    lines = _lines(data, "latin-1")
    if len(lines) < 2 or not lines[0].as_py().startswith("Stations_id") or set(lines[1].as_py().strip()) - {"-", " "}:
        return Parsed(
            None,
            error_message="Keine DWD-Stationsliste: erwartet werden die Kopfzeile "
            "'Stations_id von_datum bis_datum ...' und eine Zeile aus Bindestrichen.",
        )
    body = lines[2:]
    numbers = np.arange(3, len(body) + 3, dtype=np.int64)
    not_blank = np.asarray(
        pc.invert(pc.match_substring_regex(body, r"^\s*$")).to_numpy(zero_copy_only=False), dtype=bool
    )
    body = body.filter(pa.array(not_blank))
    numbers = numbers[not_blank]
    fields = pc.extract_regex(body, _STATION_LINE)
    matched = np.asarray(pc.is_valid(fields).to_numpy(zero_copy_only=False), dtype=bool)
    rejections = []
    for i in np.flatnonzero(~matched):
        rejections.append(
            Rejection(
                int(numbers[i]),
                None,
                body[i].as_py(),
                "station_list_fixed_width",
                "Die Zeile entspricht nicht dem Festbreitenformat der DWD-Stationsliste "
                "(Kennung, von, bis, Höhe, Breite, Länge, Name, Bundesland).",
            )
        )
    fields = fields.filter(pa.array(matched))
    numbers = numbers[matched]

    def get(name):
        return pc.struct_field(fields, name)

    valid_from, valid_to = parse_yyyymmdd(get("valid_from")), parse_yyyymmdd(get("valid_to"))
    bad_dates = np.asarray(
        pc.or_(pc.is_null(valid_from), pc.is_null(valid_to)).to_numpy(zero_copy_only=False), dtype=bool
    )
    for i in np.flatnonzero(bad_dates):
        rejections.append(
            Rejection(
                int(numbers[i]),
                "von_datum/bis_datum",
                f"{get('valid_from')[i]} {get('valid_to')[i]}",
                "date_yyyymmdd",
                "von_datum oder bis_datum ist kein gültiges Datum JJJJMMTT.",
            )
        )
    rest = get("rest")
    name = pc.utf8_trim_whitespace(pc.utf8_slice_codeunits(rest, 0, STATION_NAME_WIDTH))
    tail = pc.utf8_trim_whitespace(pc.utf8_slice_codeunits(rest, STATION_NAME_WIDTH))
    # Newer lists append an "Abgabe" column (e.g. "Frei") after the state, separated by spaces.
    state = pc.list_element(pc.split_pattern_regex(tail, r"\s{2,}"), 0)
    keep = pa.array(~bad_dates)
    table = pa.table(
        {
            "station_id": pc.cast(get("station_id"), pa.int32()).filter(keep),
            "valid_from": valid_from.filter(keep),
            "valid_to": valid_to.filter(keep),
            "station_height_m": pc.cast(get("height"), pa.int32()).filter(keep),
            "latitude": pc.cast(get("latitude"), pa.float64()).filter(keep),
            "longitude": pc.cast(get("longitude"), pa.float64()).filter(keep),
            "station_name": name.filter(keep),
            "federal_state": state.filter(keep),
            "_row_number": pa.array(numbers[~bad_dates], pa.int64()),
        }
    )
    return Parsed(table, rows_read=len(body), rejections=rejections)


# --------------------------------------------------------------------------------------------- writing
#: Column widths and decimals the DWD uses when it pads values (measured on the real files).
_WIDTHS = {
    "STATIONS_ID": (11, None),
    "QN_3": (4, None),
    "FX": (6, 1),
    "FM": (6, 1),
    "QN_4": (5, None),
    "RSK": (6, 1),
    "RSKF": (4, None),
    "SDK": (9, 3),
    "SHK_TAG": (4, None),
    "NM": (6, 1),
    "VPM": (6, 1),
    "PM": (8, 2),
    "TMK": (7, 1),
    "UPM": (8, 2),
    "TXK": (7, 1),
    "TNK": (7, 1),
    "TGK": (7, 1),
}


def _format_column(name: str, values: np.ndarray) -> list[str]:
    width, decimals = _WIDTHS[name]
    missing = np.isnan(values)
    values = np.where(missing, 0.0, values) + 0.0  # -0.0 would print as "-0.0"; the DWD writes 0.0
    if decimals is None:
        text = [f"%{width}d" % v for v in values.astype(np.int64).tolist()]
    else:
        fmt = f"%{width}.{decimals}f"
        text = [fmt % v for v in values.tolist()]
    gap = "-999".rjust(width)
    for i in np.flatnonzero(missing).tolist():
        text[i] = gap
    return text


def render_product(station_id: int, days: np.ndarray, values: dict[str, np.ndarray]) -> bytes:
    """A product file in the DWD's layout: ``days`` as datetime64[D], values per column (NaN = -999)."""
    n = len(days)
    cols = [[f"{station_id:>11d}"] * n]
    cols.append([d.replace("-", "") for d in np.datetime_as_string(days, unit="D").tolist()])
    for name in PRODUCT_COLUMNS[2:-1]:
        cols.append(_format_column(name, np.asarray(values.get(name, np.full(n, np.nan)), dtype=float)))
    cols.append(["eor"] * n)
    body = "\r\n".join(";".join(parts) for parts in zip(*cols))
    return (PRODUCT_HEADER + "\r\n" + body + ("\r\n" if n else "")).encode("ascii")


def product_name(station_id: int, first: dt.date, last: dt.date) -> str:
    return f"produkt_klima_tag_{first:%Y%m%d}_{last:%Y%m%d}_{station_id:05d}.txt"


def hist_zip_name(station_id: int, first: dt.date, last: dt.date) -> str:
    return f"tageswerte_KL_{station_id:05d}_{first:%Y%m%d}_{last:%Y%m%d}_hist.zip"


def recent_zip_name(station_id: int) -> str:
    return f"tageswerte_KL_{station_id:05d}_akt.zip"


@dataclass(frozen=True)
class StationEntry:
    station_id: int
    valid_from: dt.date
    valid_to: dt.date
    height_m: int
    latitude: float
    longitude: float
    name: str
    state: str


def render_station_list(stations: list[StationEntry]) -> bytes:
    """The station list in the DWD's fixed-width layout (ISO-8859-1, CRLF, lines padded to 200)."""
    lines = [
        "Stations_id von_datum bis_datum Stationshoehe geoBreite geoLaenge Stationsname Bundesland",
        "----------- --------- --------- ------------- --------- --------- "
        "----------------------------------------- ----------",
    ]
    for s in stations:
        line = (
            f"{s.station_id:05d} {s.valid_from:%Y%m%d} {s.valid_to:%Y%m%d} {s.height_m:>14d} "
            f"{s.latitude:>11.4f} {s.longitude:>9.4f} {s.name:<40} {s.state}"
        )
        lines.append(line.ljust(200))
    return ("\r\n".join(lines) + "\r\n").encode("iso-8859-1")


def render_geography_metadata(s: StationEntry, first: dt.date, last: dt.date | None) -> bytes:
    """``Metadaten_Geographie_<id>.txt`` as found in every KL archive (one station location period)."""
    to = f"{last:%Y%m%d}" if last else " " * 8
    text = (
        "Stations_id;Stationshoehe;Geogr.Breite;Geogr.Laenge;von_datum;bis_datum;Stationsname\r\n"
        f"{s.station_id:>5d};{s.height_m:>6.2f};{s.latitude:.4f};{s.longitude:.4f};{first:%Y%m%d};{to};{s.name}\r\n"
    )
    return text.encode("iso-8859-1")
