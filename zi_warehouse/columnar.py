"""Helpers the columnar readers (trees, surfaces) share: header maps, code maps, Arrow columns, rejections.

Belongs here: matching delivered headers against a header map (``map_headers``, ``HeaderError``) and the
header and code maps kept as CSV data (``read_spellings``); renaming to canonical columns; the small
Arrow/DuckDB pieces a vectorised check needs (a code table per distinct value, a constant column,
``nullif(trim(x), '')`` without exporting unchanged strings, rejections from an Arrow table, an in-memory
DuckDB connection) and reading a batch's files on threads (``read_concurrently``). Reading the files themselves is ``zi_warehouse/delimited.py`` (text) and the family
packages (``zi_warehouse/trees/geojson.py``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from zi_warehouse.accounting import FileResult, Rejection
from zi_warehouse.landing import LandedFile
from zi_warehouse.reference import normalise_name
from zi_warehouse.warehouse import quote_ident as _ident


class HeaderError(ValueError):
    """Unknown, missing or duplicate headers; the message is German and names the difference."""


def read_spellings(path: Path, key: str, spelling: str) -> dict[str, set[str]]:
    """A two-column map kept as CSV data: ``{key: {spellings}}``, keys in the order they first appear.

    Spellings are compared after ``normalise_name`` (case, umlauts, punctuation and spacing do not matter).
    """
    out: dict[str, set[str]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row[key], set()).add(row[spelling])
    return out


def map_headers(
    headers: Iterable[str], aliases: dict[str, set[str]], required: Iterable[str], ignore: Iterable[str] = ()
) -> dict[str, str]:
    """{header as delivered: canonical name}; raises HeaderError on unknown, missing or duplicate headers.

    Unknown headers fail loudly: a column we do not map is data we would lose silently. Headers mapped to
    a name in ``ignore`` are columns a sender sends and a header map declares as not loaded: they may
    repeat and are left out of the result.
    """
    ignore = set(ignore)
    index = {
        normalise_name(a): canon
        for canon, spellings in aliases.items()
        for a in spellings | {canon}
        if canon not in ignore or a != canon
    }
    mapping, unknown, seen = {}, [], {}
    for h in headers:
        if h == "_row_number":
            continue
        canon = index.get(normalise_name(h))
        if canon is None:
            unknown.append(h)
            continue
        if canon in ignore:
            continue
        if canon in seen:
            raise HeaderError(f"Spalte '{canon}' kommt doppelt vor ('{seen[canon]}' und '{h}').")
        seen[canon] = h
        mapping[h] = canon
    missing = [c for c in required if c not in seen]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append("unbekannte Spalten: " + ", ".join(f"'{u}'" for u in unknown))
        if missing:
            parts.append("fehlende Pflichtspalten: " + ", ".join(missing))
        raise HeaderError("Kopfzeile passt nicht zur Vorlage (" + "; ".join(parts) + ").")
    return mapping


def canonical_columns(table: pa.Table, mapping: dict[str, str], all_columns: Iterable[str]) -> pa.Table:
    """Rename delivered headers to canonical names; absent optional columns become NULL strings."""
    out = {"_row_number": table.column("_row_number")}
    for original, canon in mapping.items():
        if original not in table.column_names:  # the header read once way, the rows another (e.g. a stray byte)
            raise HeaderError(
                f"Spalte '{original}' der Kopfzeile ist in den Datenzeilen nicht wiederzufinden "
                "(Zeichenkodierung der Datei prüfen, z. B. UTF-8)."
            )
        col = table.column(original)
        out[canon] = col if col.type == pa.string() else col.cast(pa.string())
    for canon in all_columns:
        if canon not in out:
            out[canon] = pa.nulls(table.num_rows, pa.string())
    return pa.table(out)


def code_map(con: duckdb.DuckDBPyConnection, name: str, values: Iterable, lookup) -> None:
    """Register ``name`` (value, code) for the distinct delivered ``values`` mapped by ``lookup``."""
    distinct = sorted({v for v in values if v is not None})
    con.register(
        name,
        pa.table(
            {"value": pa.array(distinct, pa.string()), "code": pa.array([lookup(v) for v in distinct], pa.string())}
        ),
    )


def constant_column(value: str | None, n: int) -> pa.Array:
    """A string column with the same value in every row (as DuckDB gave for ``?::varchar as name``)."""
    return pa.repeat(pa.scalar(value, pa.string()), n)


def sorted_by_row_number(table: pa.Table) -> pa.Table:
    """``table`` in file order. The vectorised checks take the delivered columns as they are and find rows
    by their number, so they need the numbers unique and increasing; a reader delivers them so, and a
    table that comes in another order (a caller's) is sorted here rather than checked another way."""
    numbers = table.column("_row_number").to_numpy()
    if len(numbers) > 1 and not bool((numbers[1:] > numbers[:-1]).all()):
        table = table.take(pc.sort_indices(table, [("_row_number", "ascending")]))
        numbers = table.column("_row_number").to_numpy()
        if not bool((numbers[1:] > numbers[:-1]).all()):
            raise ValueError("row numbers must be unique")
    return table


#: A value that starts or ends with a space or a non-ASCII character: the only values DuckDB's ``trim``
#: may change (it removes Unicode space separators, U+0020 being the only ASCII one).
_MAY_NEED_TRIM = r"^[ \x{80}-\x{10FFFF}]|[ \x{80}-\x{10FFFF}]$"


def _may_need_trim(column: pa.ChunkedArray) -> bool:
    if pc.all(pc.string_is_ascii(column)).as_py() is not False:  # the usual case, and much cheaper than a regex
        return pc.any(pc.or_(pc.starts_with(column, " "), pc.ends_with(column, " "))).as_py() is True
    return pc.any(pc.match_substring_regex(column, _MAY_NEED_TRIM)).as_py() is True


def text_columns(con: duckdb.DuckDBPyConnection, table: pa.Table, names: Iterable[str]) -> dict[str, pa.Array]:
    """``nullif(trim(x), '')`` of string columns of ``table``, which is registered as ``src`` on ``con``.

    Exporting strings from DuckDB is the slow part of a check; most delivered values need no trimming.
    A column none of whose values starts or ends with a space or a non-ASCII character cannot change
    under ``trim``; for the others one aggregate asks DuckDB (whose ``trim`` is the rule). Unchanged
    columns are taken from the Arrow table as they are, with empty strings made NULL; only columns with
    values to trim are computed and exported by DuckDB.
    """
    names = list(names)
    suspect = [c for c in names if _may_need_trim(table.column(c))]
    unchanged = dict.fromkeys(names, True)
    if suspect:
        answers = con.sql(
            "select " + ", ".join(f"bool_and(trim({_ident(c)}) = {_ident(c)})" for c in suspect) + " from src"
        ).fetchall()[0]
        unchanged.update({c: same is not False for c, same in zip(suspect, answers)})  # NULL: all values NULL
    out: dict[str, pa.Array] = {}
    null = pa.scalar(None, pa.string())
    for name in names:
        if unchanged[name]:
            column = table.column(name)
            out[name] = pc.if_else(pc.equal(column, ""), null, column)
    trimmed = [c for c in names if not unchanged[c]]
    if trimmed:
        exported = con.sql(
            "select " + ", ".join(f"nullif(trim({_ident(c)}), '') as {_ident(c)}" for c in trimmed) + " from src"
        ).to_arrow_table()
        out.update({c: exported.column(c) for c in trimmed})
    return out


def rejections_from_arrow(table: pa.Table, sheet: str | None = None) -> list[Rejection]:
    """Rejection objects from an Arrow table (row_number, column_name, value_found, rule, message_de)."""
    return [
        Rejection(r["row_number"], r["column_name"], r["value_found"], r["rule"], r["message_de"], sheet)
        for r in table.to_pylist()
    ]


def new_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    return con


#: Files of a batch read at the same time. The columnar readers spend nearly all their time in DuckDB, Arrow,
#: pyproj and shapely, which release the GIL, so a second file read beside the first keeps the second core busy
#: (tree registers at scale 1, 2 cores: 6.2-6.7 s -> 3.6-3.8 s). Not more: every file in flight holds its
#: columns in memory, and the largest registers are read at the same time.
READ_THREADS = 2


def read_concurrently(
    files: list[LandedFile], read_file: Callable[[LandedFile, duckdb.DuckDBPyConnection], FileResult]
) -> list[FileResult]:
    """``read_file(file, cursor)`` for every file, ``READ_THREADS`` at a time, each call with a cursor of its own
    on one in-memory DuckDB (a cursor is DuckDB's unit of thread safety; registered tables and temporary tables
    are the cursor's own). Largest files first, so that a small one is last to finish; the results come back
    in the order of ``files``. A reader's exception is raised here once the files in flight have ended; files
    not started yet are not read."""
    con = new_connection()  # connecting costs ~30 ms: one per batch

    def read_one(landed: LandedFile) -> FileResult:
        cursor = con.cursor()
        try:
            return read_file(landed, cursor)
        finally:
            cursor.close()

    try:
        if len(files) <= 1:  # a single delivery: no thread to start
            return [read_one(landed) for landed in files]
        order = sorted(range(len(files)), key=lambda i: -files[i].size_bytes)
        results: list[FileResult | None] = [None] * len(files)
        pool = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="zi-read")
        try:
            for i, result in zip(order, pool.map(read_one, [files[i] for i in order])):
                results[i] = result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results
    finally:
        con.close()
