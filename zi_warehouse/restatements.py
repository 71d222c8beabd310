"""Restatements: which reported figures changed since the last Berichtsstand, by how much, and which deliveries
explain it (``marts.mart_restatements``); and what every landed file reaches, recorded in each release.

What belongs here: the figures compared (:data:`RESTATED_MARTS`), the comparison of the marts being published
with the marts of the last frozen release (``published/reporting/<JJJJ-Qn>/zi.duckdb``, attached read-only),
the landed files added, replaced or removed since (the ingestion ledger of now against the Berichtsstand's
manifest), and which figures a file can explain (its reach, from the lineage columns of the raw tables).

Why a Python step in the publish and not a dbt model: the comparison is between two *releases* (the marts
dbt has just built and a frozen published file), not a transformation of landed data. dbt would have to
attach a file that may not exist yet (no Berichtsstand), changes with every freeze and lives outside the
warehouse, in a second invocation after the marts are built. In the publish it is one query on the
connection that already reads the marts; its result is a mart of the release like every other (table and
column comments, Parquet, PostgreSQL), and the working warehouse stays dbt's alone.

How a figure is explained (docs/marts.md, mart_restatements): a file explains a changed figure of municipality
K in mart M when (1) it loaded rows into a raw table M is built from (dbt lineage, ``target/manifest.json``)
and (2) its rows concern K, or concern no municipality in particular (e.g. DWD climate data). Which
municipalities a file's rows concern (its *reach*) comes from the lineage column ``_source_file``: the row's
``municipality_key``, else the municipality of the funding application (``application_id``) or approval
(``approval_id``) it refers to, else the ledger's municipality of the file. Every release records the reach
of each landed file in its manifest, so the files removed since a Berichtsstand still explain what they
used to contribute. Periods are not used to narrow: a late delta can change any earlier year, and the
KPIs are cumulative.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa

from zi_warehouse import config
from zi_warehouse.warehouse import NUMERIC_TYPES, quote_ident, table_exists

TABLE = "mart_restatements"


@dataclass(frozen=True)
class RestatedMart:
    """A mart whose figures are compared: one row per municipality, period and (optionally) breakdown."""

    name: str
    period_column: str  # a year (integer) or a quarter (JJJJ-Qn)
    breakdown: tuple[str, ...] = ()  # further key columns, shown as "a / b"
    attributes: tuple[str, ...] = ()  # numeric columns that describe the period, not figures

    @property
    def keys(self) -> tuple[str, ...]:
        return ("municipality_key", self.period_column, *self.breakdown)


#: The KPI, budget, tree and pipeline figures per municipality and period (what the quarterly report shows
#: per municipality; region and programme totals are sums of these). Every numeric column is a figure.
RESTATED_MARTS = (
    RestatedMart("mart_kpi_municipality_year", "year"),
    RestatedMart("mart_budget_municipality_year", "year"),
    RestatedMart("mart_trees_municipality_year", "year", breakdown=("tree_source", "species_group")),
    RestatedMart("mart_pipeline_municipality_quarter", "period", attributes=("year", "quarter")),
)

#: Two values closer than this (relative) are equal: sums of doubles may differ in the last bits.
RELATIVE_TOLERANCE = 1e-9

TABLE_COMMENT = (
    "Änderungen gegenüber dem letzten Berichtsstand (Grain: Mart × Kennzahl × Kommune × Zeitraum × "
    "Aufschlüsselung): alter und neuer Wert, Differenz und die seitdem hinzugekommenen, ersetzten oder "
    "entfernten Dateien, die die Änderung erklären. Leer, solange kein Berichtsstand eingefroren ist."
)
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("reporting_quarter", "varchar", "Berichtsstand, mit dem verglichen wird (JJJJ-Qn)"),
    ("reporting_release_id", "varchar", "Release des Berichtsstands (published/releases/<id>)"),
    ("mart", "varchar", "Mart der Kennzahl"),
    ("figure", "varchar", "Kennzahl (Spalte des Marts)"),
    ("municipality_key", "varchar", "Schlüssel der Kommune"),
    ("municipality_name", "varchar", "Name der Kommune"),
    ("period", "varchar", "Zeitraum: Jahr (JJJJ) oder Quartal (JJJJ-Qn)"),
    ("breakdown", "varchar", "Weitere Aufschlüsselung (Bäume: Herkunft / Artengruppe), sonst leer"),
    ("old_value", "double", "Wert im Berichtsstand (leer: gab es dort nicht)"),
    ("new_value", "double", "Wert jetzt (leer: gibt es nicht mehr)"),
    ("difference", "double", "Neuer minus alter Wert (leer, wenn einer fehlt)"),
    ("change_kind", "varchar", "geändert, neu oder entfallen"),
    ("files_added", "varchar", "Seit dem Berichtsstand hinzugekommene Dateien, die die Änderung erklären (; getrennt)"),
    ("files_replaced", "varchar", "Seitdem ersetzte Dateien (neuer Inhalt unter gleichem Namen), die sie erklären"),
    ("files_removed", "varchar", "Seitdem entfernte Dateien, die sie erklären"),
    (
        "code_changed",
        "boolean",
        "Code oder dbt-Projekt seit dem Berichtsstand geändert (Änderung auch ohne Datei möglich)",
    ),
)
CHANGE_KINDS = {"added": "files_added", "replaced": "files_replaced", "removed": "files_removed"}

#: Raw tables without lineage columns, or not deliveries (the ledger itself, quality results).
LEDGER_TABLES = ("ingestion_files", "rejected_rows")


@dataclass(frozen=True)
class Baseline:
    """The Berichtsstand to compare with: its quarter, release, attached database alias and manifest."""

    quarter: str
    release_id: str
    alias: str  # the frozen zi.duckdb, attached read-only on the publish connection
    manifest: dict


# --------------------------------------------------------------------------------------------------
# What a landed file reaches
# --------------------------------------------------------------------------------------------------


def landed_files(con: duckdb.DuckDBPyConnection, db: str, known: dict[tuple[str, str], dict]) -> list[dict]:
    """Every file of the ingestion ledger of database ``db`` with hash, outcome, rows loaded and its reach.

    ``known`` maps (path, hash) to an entry of an earlier release: a file with the same content reaches the
    same raw tables and municipalities, so only new content is looked up in the raw tables.
    """
    if not table_exists(con, "raw", "ingestion_files", database=db):
        return []
    ledger = con.execute(
        f"select source_file, source_family, file_hash, outcome, rows_loaded, municipality_key "
        f"from {db}.raw.ingestion_files order by source_file"
    ).fetchall()
    entries, unknown = [], {}
    for path, family, file_hash, outcome, rows_loaded, municipality in ledger:
        entry = {"path": path, "family": family, "hash": file_hash, "outcome": outcome, "rows_loaded": rows_loaded}
        previous = known.get((path, file_hash))
        if previous is not None and "raw_tables" in previous:
            entry["raw_tables"] = previous["raw_tables"]
            entry["municipalities"] = previous["municipalities"]
        else:
            unknown[path] = (entry, municipality)
        entries.append(entry)
    if unknown:
        reach = _reach(con, db, list(unknown))
        for path, (entry, ledger_municipality) in unknown.items():
            tables, municipalities = reach.get(path, ([], set()))
            if ledger_municipality:
                municipalities = municipalities | {ledger_municipality}
            entry["raw_tables"] = sorted(tables)
            # None: the rows concern no municipality in particular (they reach every municipality)
            entry["municipalities"] = sorted(municipalities) if municipalities else (None if tables else [])
    return entries


def _reach(con: duckdb.DuckDBPyConnection, db: str, paths: list[str]) -> dict[str, tuple[set, set]]:
    """Raw tables and municipalities of the rows of each file in ``paths`` (lineage column ``_source_file``)."""
    con.execute("create or replace temp table _reach_files (path varchar)")
    con.executemany("insert into _reach_files values (?)", [[p] for p in paths])
    tables = {name: set(columns) for name, columns in _raw_columns(con, db).items()}
    application = f"{db}.raw.{quote_ident('funding__applications')}"
    approval = f"{db}.raw.{quote_ident('funding__approvals')}"
    has_applications = {"application_id", "municipality_key"} <= tables.get("funding__applications", set())
    has_approvals = {"approval_id", "application_id"} <= tables.get("funding__approvals", set())
    out: dict[str, tuple[set, set]] = {}
    for name, columns in tables.items():
        if "_source_file" not in columns or name in LEDGER_TABLES:
            continue
        source = f"{db}.raw.{quote_ident(name)} t"
        if "municipality_key" in columns:
            municipality = "t.municipality_key"
        elif "application_id" in columns and has_applications:
            municipality = "a.municipality_key"
            source += (
                f" left join (select application_id, any_value(municipality_key) as municipality_key "
                f"from {application} group by 1) a on a.application_id = t.application_id"
            )
        elif "approval_id" in columns and has_applications and has_approvals:
            municipality = "a.municipality_key"
            source += (
                f" left join (select p.approval_id, any_value(a.municipality_key) as municipality_key "
                f"from {approval} p join {application} a on a.application_id = p.application_id "
                f"group by 1) a on a.approval_id = t.approval_id"
            )
        else:
            municipality = "null::varchar"
        for path, municipalities in con.execute(
            f"select t._source_file, list(distinct {municipality}) filter (where {municipality} is not null) "
            f"from {source} where t._source_file in (select path from _reach_files) group by 1"
        ).fetchall():
            found = out.setdefault(path, (set(), set()))
            found[0].add(name)
            found[1].update(municipalities or [])
    con.execute("drop table _reach_files")
    return out


def _raw_columns(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, column in con.execute(
        "select table_name, column_name from duckdb_columns() where database_name = ? and schema_name = 'raw' "
        "order by table_name, column_index",
        [db],
    ).fetchall():
        out.setdefault(table, []).append(column)
    return out


# --------------------------------------------------------------------------------------------------
# Which raw tables each compared mart is built from (dbt lineage)
# --------------------------------------------------------------------------------------------------


def mart_raw_tables(manifest_path: Path | None = None) -> dict[str, set[str]] | None:
    """Raw tables upstream of each compared mart, from the dbt manifest; None without a manifest (then every
    file may explain every mart)."""
    path = manifest_path or config.REPO_ROOT / "target" / "manifest.json"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    return _mart_raw_tables(str(path), stamp)


@lru_cache(maxsize=2)
def _mart_raw_tables(path: str, _stamp: int) -> dict[str, set[str]] | None:
    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    parents = manifest.get("parent_map", {})
    by_alias = {
        n.get("alias") or n.get("name"): key
        for key, n in manifest.get("nodes", {}).items()
        if n.get("resource_type") == "model"
    }
    out: dict[str, set[str]] = {}
    for mart in RESTATED_MARTS:
        start = by_alias.get(mart.name)
        if start is None:
            continue
        seen, stack, sources = set(), [start], set()
        while stack:
            node = stack.pop()
            for parent in parents.get(node, []):
                if parent in seen:
                    continue
                seen.add(parent)
                if parent.startswith("source."):
                    sources.add(parent.rsplit(".", 1)[1])
                else:
                    stack.append(parent)
        out[mart.name] = sources
    return out


# --------------------------------------------------------------------------------------------------
# The restatements
# --------------------------------------------------------------------------------------------------


def create_empty(con: duckdb.DuckDBPyConnection) -> None:
    """``memory.main.mart_restatements`` with its columns and no rows (no Berichtsstand yet)."""
    columns = ", ".join(f"{quote_ident(name)} {kind}" for name, kind, _ in COLUMNS)
    con.execute(f"create or replace table memory.main.{TABLE} ({columns})")


def build(
    con: duckdb.DuckDBPyConnection,
    db: str,
    baseline: Baseline | None,
    current_files: list[dict],
    code_changed: bool,
) -> int:
    """Fill ``memory.main.mart_restatements``: the figures of ``db``'s marts that differ from the Berichtsstand.

    Returns the number of rows. Without a Berichtsstand the table is empty.
    """
    create_empty(con)
    if baseline is None:
        return 0
    lineage = mart_raw_tables()
    parts = []
    for mart in RESTATED_MARTS:
        query = _compare_query(con, db, baseline.alias, mart)
        if query:
            parts.append(query)
    if not parts:
        return 0
    con.execute("create or replace temp table _restated as " + " union all ".join(parts))
    _changed_files_table(con, baseline.manifest.get("landed_files", []), current_files)
    _lineage_table(con, lineage)
    con.execute(
        f"""
        insert into memory.main.{TABLE}
        with explained as (
            select r.mart, r.municipality_key,
                {
            ", ".join(
                f"string_agg(distinct f.path, '; ' order by f.path) filter (where f.change_kind = '{kind}') as {column}"
                for kind, column in CHANGE_KINDS.items()
            )
        }
            from (select distinct mart, municipality_key from _restated) r
            join _mart_lineage l on l.mart = r.mart or l.mart is null
            join _changed_files f on (f.raw_table = l.raw_table or l.mart is null)
                and (f.municipality_key is null or f.municipality_key = r.municipality_key)
            group by all
        )
        select ?, ?, r.mart, r.figure, r.municipality_key, r.municipality_name, r.period, r.breakdown,
            r.old_value, r.new_value, r.new_value - r.old_value,
            case when r.old_value is null then 'neu' when r.new_value is null then 'entfallen' else 'geändert' end,
            e.files_added, e.files_replaced, e.files_removed, ?
        from _restated r
        left join explained e on e.mart = r.mart and e.municipality_key is not distinct from r.municipality_key
        order by r.mart, r.municipality_key, r.period, r.breakdown, r.figure
        """,
        [baseline.quarter, baseline.release_id, code_changed],
    )
    for table in ("_restated", "_changed_files", "_mart_lineage"):
        con.execute(f"drop table {table}")
    return con.execute(f"select count(*) from memory.main.{TABLE}").fetchone()[0]


def _columns(con: duckdb.DuckDBPyConnection, db: str, table: str) -> dict[str, str]:
    return dict(
        con.execute(
            "select column_name, data_type from duckdb_columns() where database_name = ? and schema_name = 'marts' "
            "and table_name = ? order by column_index",
            [db, table],
        ).fetchall()
    )


def _compare_query(con: duckdb.DuckDBPyConnection, db: str, frozen: str, mart: RestatedMart) -> str | None:
    """Long form (one row per figure) of the mart in both releases, full outer join, only the differences."""
    now, then = _columns(con, db, mart.name), _columns(con, frozen, mart.name)
    if not now or not then or any(k not in now or k not in then for k in mart.keys):
        return None  # the mart is new or its grain changed: nothing comparable
    skip = {*mart.keys, *mart.attributes}
    figures = [
        c
        for c, kind in now.items()
        if c not in skip
        and c in then
        and kind.split("(")[0] in NUMERIC_TYPES
        and then[c].split("(")[0] in NUMERIC_TYPES
    ]
    if not figures:
        return None
    keys = ", ".join(quote_ident(k) for k in mart.keys)
    values = ", ".join(f"{quote_ident(f)}::double as {quote_ident(f)}" for f in figures)
    listed = ", ".join(quote_ident(f) for f in figures)

    def long(database: str) -> str:
        return (
            f"(from (select {keys}, municipality_name, {values} from {database}.marts.{quote_ident(mart.name)}) "
            f"unpivot include nulls (value for figure in ({listed})))"
        )

    join = " and ".join(f"n.{quote_ident(k)} is not distinct from o.{quote_ident(k)}" for k in (*mart.keys, "figure"))
    period = mart.period_column
    breakdown = (
        " || ' / ' || ".join(
            f"coalesce(coalesce(n.{quote_ident(b)}, o.{quote_ident(b)})::varchar, '–')" for b in mart.breakdown
        )
        if mart.breakdown
        else "null::varchar"
    )
    return f"""
        select '{mart.name}' as mart, coalesce(n.figure, o.figure) as figure,
            coalesce(n.municipality_key, o.municipality_key) as municipality_key,
            coalesce(n.municipality_name, o.municipality_name) as municipality_name,
            coalesce(n.{quote_ident(period)}, o.{quote_ident(period)})::varchar as period,
            {breakdown} as breakdown, o.value as old_value, n.value as new_value
        from {long(db)} n full outer join {long(frozen)} o on {join}
        where n.value is distinct from o.value
            and not coalesce(abs(n.value - o.value) <= {RELATIVE_TOLERANCE} * greatest(abs(n.value), abs(o.value)),
                             false)
    """


def _changed_files_table(con: duckdb.DuckDBPyConnection, then: list[dict], now: list[dict]) -> None:
    """``_changed_files``: one row per changed file × raw table × municipality (NULL: every municipality)."""
    before = {f["path"]: f for f in then}
    after = {f["path"]: f for f in now}
    rows = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old and new and old.get("hash") == new.get("hash"):
            continue
        kind = "added" if old is None else "removed" if new is None else "replaced"
        versions = [f for f in (old, new) if f]
        tables = sorted({t for f in versions for t in f.get("raw_tables") or []})
        reach = [f.get("municipalities") for f in versions if f.get("raw_tables")]
        municipalities = None if any(r is None for r in reach) else sorted({m for r in reach for m in r})
        for table in tables:
            for municipality in municipalities if municipalities is not None else [None]:
                rows.append((path, kind, table, municipality))
    names = ["path", "change_kind", "raw_table", "municipality_key"]
    _temp_table(
        con, "_changed_files", pa.table({n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(names)})
    )


def _lineage_table(con: duckdb.DuckDBPyConnection, lineage: dict[str, set[str]] | None) -> None:
    """``_mart_lineage`` (mart, raw_table); one row of NULLs without lineage: every file may explain any mart."""
    pairs = [(m, t) for m, tables in sorted((lineage or {}).items()) for t in sorted(tables)]
    if lineage is None:
        pairs = [(None, None)]
    _temp_table(
        con,
        "_mart_lineage",
        pa.table(
            {
                "mart": pa.array([p[0] for p in pairs], pa.string()),
                "raw_table": pa.array([p[1] for p in pairs], pa.string()),
            }
        ),
    )


def _temp_table(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table) -> None:
    con.register(f"{name}_arrow", data)
    try:
        con.execute(f"create or replace temp table {name} as select * from {name}_arrow")
    finally:
        con.unregister(f"{name}_arrow")


def column_comments() -> dict[str, str]:
    return {name: comment for name, _, comment in COLUMNS}
