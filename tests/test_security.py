"""Security: no secrets in the repository, hostile names stay data, no personal data in published artefacts.

- Secrets: every file ``git ls-files`` lists is scanned for private keys, DSNs with a password and
  password/secret/token literals; configuration comes from the environment and every ``ZI_*`` variable
  the code reads is documented in ``.env.example`` (which holds no values for secrets).
- Hostile names: a real workbook named ``x"; drop table marts.fct_measure; --.xlsx`` with a hostile sheet
  name, and one with a hostile column header, dropped into a copy of the demo landing area and built with
  ``zi build``: the build completes, the hostile file names are stored as data, the header is rejected with
  its reason, and ``marts.fct_measure`` still exists (working and published). The CSV readers that put
  file paths into SQL (trees, surfaces, climate) get hostile file names at the ingest level.
- The read-only PostgreSQL role: tests/test_serving_postgres.py::test_reader_role_reads_every_mart_and_nothing_else.
- Personal data: the coordinators' names and e-mails (read from the working warehouse's raw tables) appear
  in no published artefact: the published DuckDB file, the Parquet files, the PostgreSQL marts, reports
  under data/reports, and the feedback workbooks of other municipalities.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from pathlib import Path

import duckdb
import openpyxl
import pytest

from conftest import REPO_ROOT, published_parquet, read_parquet_sql, run_zi
from test_forecasts_reader import good_row, write_xlsx
from zi_warehouse.ingest import ingest
from zi_warehouse.sources import climate, surfaces, trees

# --- secrets -----------------------------------------------------------------------------------------------

#: Values that only stand for a secret (documentation placeholders), never a secret themselves.
PLACEHOLDER = re.compile(r"^(|<[^>]*>|\$\{?[A-Za-z_]+\}?|[A-Z][A-Z_]*|\*+|x+|\.\.\.|changeme)$")
SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "DSN with password": re.compile(r"\b[a-z][a-z0-9+]*://[^:/@\s'\"]+:(?P<value>[^@/\s'\"]+)@"),
    "password literal": re.compile(
        r"(?i)\b[a-z_]*(password|passwort|passwd|secret|token|api_key)[a-z_]*\b\s*[:=]\s*['\"](?P<value>[^'\"]*)['\"]"
    ),
    "password in environment line": re.compile(
        r"(?m)^\s*(export\s+)?[A-Z_]*(PASSWORD|SECRET|TOKEN)[A-Z_]*=(?P<value>\S*)"
    ),
    "cloud key": re.compile(r"\b(AKIA[0-9A-Z]{16}|ghp_[0-9A-Za-z]{36}|xox[bp]-[0-9A-Za-z-]{10,})\b"),
}
#: Files that must never be tracked (local configuration with real values).
FORBIDDEN_FILES = re.compile(r"(^|/)(\.env|.*\.pem|.*\.key|id_rsa.*|\.pgpass|.*\.p12)$")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def secret_findings(name: str, text: str) -> list[str]:
    findings = []
    for kind, pattern in SECRET_PATTERNS.items():
        for match in pattern.finditer(text):
            value = match.groupdict().get("value")
            if value is not None and PLACEHOLDER.match(value):
                continue
            # Tests start throwaway servers on 127.0.0.1 and give them literal passwords: not secrets.
            if kind == "password literal" and name.startswith("tests/"):
                continue
            line = text.count("\n", 0, match.start()) + 1
            findings.append(f"{name}:{line}: {kind}: {match.group(0)[:80]}")
    return findings


def test_scanner_finds_what_it_looks_for():
    assert secret_findings("x.py", 'dsn = "postgresql://bi:s3cr3t@db.intern/zi"')
    assert secret_findings("x.py", 'PASSWORD = "hunter22"')
    assert secret_findings("x.sh", "export PGPASSWORD=hunter22")
    assert secret_findings("x.pem", "-----BEGIN RSA PRIVATE KEY-----")
    assert not secret_findings("docs/x.md", "postgresql://zi_reader:PASSWORT@db-host:5432/zi")
    assert not secret_findings(".env.example", "ZI_POSTGRES_READER_PASSWORD=")


def test_no_secrets_in_tracked_files():
    findings = []
    for name in tracked_files():
        assert not FORBIDDEN_FILES.search(name), f"{name} must not be in the repository"
        if name == "tests/test_security.py":
            continue  # this file holds the scanner's deliberate fake secrets (test_scanner_finds_what_it_looks_for)
        path = REPO_ROOT / name
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # binary (workbooks, Parquet): no configuration lives there
        findings += secret_findings(name, data.decode("utf-8", errors="replace"))
    assert findings == []


def test_configuration_comes_from_the_environment_and_is_documented():
    example = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"(?m)^#?\s*([A-Z][A-Z0-9_]+)=", example))
    used = set()
    for folder in ("zi_warehouse", "dagster_zi"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            used |= set(re.findall(r"[\"'](ZI_[A-Z0-9_]*[A-Z0-9])[\"']", path.read_text(encoding="utf-8")))
    used |= set(re.findall(r"env_var\('([A-Z_]+)'", (REPO_ROOT / "dbt_project" / "profiles.yml").read_text()))
    assert used, "no configuration found: the scan is broken"
    assert sorted(used - documented) == [], "undocumented settings: add them to .env.example"
    for line in example.splitlines():  # the example carries no secret values
        if re.match(r"^#?\s*[A-Z0-9_]*(PASSWORD|SECRET|TOKEN)[A-Z0-9_]*=", line):
            assert line.split("=", 1)[1].strip() == "", line
        if "://" in line:
            assert not secret_findings(".env.example", line), line
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()  # a real .env is never committed


# --- hostile names ------------------------------------------------------------------------------------------

HOSTILE_FILE = 'x"; drop table marts.fct_measure; --.xlsx'
HOSTILE_SHEET = '"; drop table marts.fct_measure'  # 31 characters: Excel's maximum
HOSTILE_HEADER_FILE = "Prognose_Bochum_2023-Q1'); drop table raw.forecasts__projects; --.xlsx"
HOSTILE_HEADER = '"); drop table marts.fct_measure; --'


def hostile_workbook(path: Path, rows: list[dict], sheet: str | None = None, header: str | None = None) -> Path:
    """A real template workbook, then renamed sheet / one more header cell written with openpyxl."""
    write_xlsx(path, rows, period=(2023, 1))
    wb = openpyxl.load_workbook(path)
    ws = next(ws for ws in wb.worksheets if ws.sheet_state == "visible" and ws.max_row > 5)
    if header:
        row = next(r for r in ws.iter_rows() if sum(1 for c in r if isinstance(c.value, str)) > 8)
        ws.cell(row=row[0].row, column=ws.max_column + 1, value=header)
    if sheet:
        ws.title = sheet
    wb.save(path)
    return path


@pytest.fixture(scope="module")
def hostile_build(demo_build, tmp_path_factory) -> tuple:
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    shutil.copytree(demo_build["data_dir"], data_dir, symlinks=True)
    folder = data_dir / "landing" / "forecasts"
    hostile_workbook(folder / HOSTILE_FILE, [good_row("BO-901"), good_row("BO-902")], sheet=HOSTILE_SHEET)
    hostile_workbook(folder / HOSTILE_HEADER_FILE, [good_row("BO-903")], header=HOSTILE_HEADER)
    result = run_zi(data_dir, "build", check=False)
    return data_dir, result


def test_hostile_file_sheet_and_header_names_are_data_not_sql(hostile_build):
    data_dir, result = hostile_build
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    con = duckdb.connect(str(data_dir / "warehouse" / "zi.duckdb"), read_only=True)
    try:
        led = dict(
            con.execute(
                "select file_name, outcome from raw.ingestion_files where source_family = 'forecasts' "
                "and file_name in (?, ?)",
                [HOSTILE_FILE, HOSTILE_HEADER_FILE],
            ).fetchall()
        )
        assert led == {HOSTILE_FILE: "loaded", HOSTILE_HEADER_FILE: "failed"}
        sheets = {
            r[0]
            for r in con.execute(
                "select _sheet from raw.forecasts__projects where _source_file = ?", [f"forecasts/{HOSTILE_FILE}"]
            ).fetchall()
        }
        assert sheets == {HOSTILE_SHEET}
        rule, message = con.execute(
            "select rule, message_de from raw.rejected_rows where source_file = ?", [f"forecasts/{HOSTILE_HEADER_FILE}"]
        ).fetchone()
        assert rule == "header_mismatch" and HOSTILE_HEADER in message
        assert con.execute("select count(*) from marts.fct_measure").fetchone()[0] > 0
        assert con.execute("select count(*) from raw.forecasts__projects").fetchone()[0] > 0
        assert (
            con.execute(
                "select count(*) from marts.mart_ingestion_files where file_name = ?", [HOSTILE_FILE]
            ).fetchone()[0]
            == 1
        )
    finally:
        con.close()
    published = duckdb.connect(str(data_dir / "published" / "zi.duckdb"), read_only=True)
    try:
        assert published.execute("select count(*) from marts.fct_measure").fetchone()[0] > 0
    finally:
        published.close()


def test_hostile_file_names_in_the_readers_that_put_paths_into_sql(tmp_path):
    """trees, surfaces and climate read files through DuckDB SQL: names with quotes stay file names."""
    hostile = "x'\"; drop table raw.trees__register_trees; --"
    landing = tmp_path / "landing"
    (landing / "trees" / "campaign").mkdir(parents=True)
    (landing / "trees" / "campaign" / f"klimabaeume{hostile}.csv").write_text(
        "Ausgabestelle;Kommune;Obstart;Anzahl;Ausgabedatum;davon nicht abgeholt\n"
        "Betriebshof Duisburg;Duisburg;Apfel;100;30.10.2021;3\n",
        encoding="utf-8",
    )
    (landing / "surfaces").mkdir()
    (landing / "surfaces" / f"flaechen{hostile}.csv").write_text(
        "Flurstück;Fläche m2;Flächenart;Kanalanschluss;Kommune;Gestaltungsraum\n"
        "0510-001-00001;125,5;Steildach;Mischwasser;Bochum;\n",
        encoding="utf-8",
    )
    (landing / "climate").mkdir()
    (landing / "climate" / f"wetter{hostile}.txt").write_text("x", encoding="utf-8")
    con = duckdb.connect()
    for source in (trees, surfaces, climate):
        ingest(con, source, landing, log=lambda m: None)
    outcomes = dict(con.execute("select source_family, outcome from raw.ingestion_files").fetchall())
    assert outcomes == {"trees": "loaded", "surfaces": "loaded", "climate": "failed"}
    names = {r[0] for r in con.execute("select file_name from raw.ingestion_files").fetchall()}
    assert all(hostile in n for n in names)
    for table in ("trees__register_trees", "trees__campaign_distributions", "surfaces__parcels"):
        con.execute(f"select count(*) from raw.{table}")  # still there


# --- personal data --------------------------------------------------------------------------------------


def contacts(warehouse: Path) -> dict[str, set[str]]:
    """Every coordinator name and e-mail in the raw tables -> the municipalities whose rows carry it."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select contact_name, contact_email, municipality_key from raw.forecasts__projects "
            "union all select contact_name, contact_email, municipality_key from raw.funding__applications"
        ).fetchall()
    finally:
        con.close()
    found: dict[str, set[str]] = {}
    for name, email, municipality in rows:
        for value in (name, email):
            if value and len(value.strip()) >= 5:
                found.setdefault(value.strip(), set()).add(municipality)
    return found


def text_values_duckdb(con: duckdb.DuckDBPyConnection, relations: list[str]) -> str:
    """Every value of every column of the relations, as text (compressed storage would hide raw bytes)."""
    parts = []
    for relation in relations:
        for row in con.execute(f"select t::varchar from {relation} t").fetchall():
            parts.append(row[0])
    return "\n".join(parts)


def pdf_text(data: bytes) -> str:
    """The PDF's text as pdftotext extracts it (poppler-utils, installed by scripts/install-system-packages.sh),
    plus the raw bytes and every Flate-compressed stream, decompressed."""
    extracted = subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True).stdout
    parts = [extracted.decode("utf-8", "replace"), data.decode("latin-1")]
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            parts.append(zlib.decompress(match.group(1)).decode("latin-1"))
        except zlib.error:
            continue
    return "\n".join(parts)


def leaks(text: str, personal: dict[str, set[str]], allowed_municipality: str | None = None) -> list[str]:
    lowered = text.casefold()
    return sorted(
        v
        for v, municipalities in personal.items()
        if v.casefold() in lowered and allowed_municipality not in municipalities
    )


@pytest.fixture(scope="module")
def personal(demo_build) -> dict[str, set[str]]:
    found = contacts(demo_build["data_dir"] / "warehouse" / "zi.duckdb")
    assert len(found) >= 20 and any("@" in v for v in found), "no contacts in raw: the scan would prove nothing"
    return found


def test_no_personal_data_in_the_published_duckdb_and_parquet(demo_build, personal):
    published = demo_build["data_dir"] / "published"
    raw_bytes = (published / "zi.duckdb").read_bytes().decode("latin-1")
    assert leaks(raw_bytes, personal) == []
    con = duckdb.connect(str(published / "zi.duckdb"), read_only=True)
    try:
        marts = [
            f'marts."{r[0]}"'
            for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()
        ]
        assert len(marts) >= 12
        assert leaks(text_values_duckdb(con, marts), personal) == []
        comments = con.execute("select string_agg(coalesce(comment, ''), ' ') from duckdb_columns()").fetchone()[0]
        assert leaks(comments or "", personal) == []
    finally:
        con.close()
    con = duckdb.connect()
    try:
        parquet = published_parquet(published / "parquet")
        assert len(parquet) == len(marts)
        assert leaks(text_values_duckdb(con, [read_parquet_sql(p) for p in parquet.values()]), personal) == []
    finally:
        con.close()


def test_no_personal_data_in_reports_and_in_other_municipalities_feedback(demo_build, personal):
    data_dir = demo_build["data_dir"]
    reports = [p for p in (data_dir / "reports").rglob("*") if p.is_file()] if (data_dir / "reports").exists() else []
    for path in reports:
        data = path.read_bytes()
        if path.suffix.lower() == ".xlsx":
            text = workbook_text(path)
        elif path.suffix.lower() == ".pdf":
            text = pdf_text(data)
        else:
            text = data.decode("utf-8", errors="replace")
        assert leaks(text, personal) == [], path
    feedback = sorted((data_dir / "feedback").rglob("*.xlsx"))
    assert feedback, "the demo build wrote no feedback workbooks: nothing to check"
    for path in feedback:
        municipality = path.parent.name  # feedback/forecasts/<municipality>/<file>
        assert leaks(workbook_text(path), personal, allowed_municipality=municipality) == [], path


def workbook_text(path: Path) -> str:
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return "\n".join(
            str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row if v is not None
        )
    finally:
        wb.close()


@pytest.mark.postgres
def test_no_personal_data_in_the_postgres_marts(demo_build, personal):
    import psycopg
    from psycopg import sql

    try:
        from pg_server import postgres_server
    except ImportError:  # pragma: no cover - run from the repository root
        from tests.pg_server import postgres_server
    from zi_warehouse.publish_postgres import publish_to_postgres

    with postgres_server() as pg:
        dsn = pg.create_database("zi_security")
        result = publish_to_postgres(
            demo_build["data_dir"] / "published" / "zi.duckdb", dsn, reader_role="zi_reader_security"
        )
        assert len(result.tables) >= 12
        texts = []
        with psycopg.connect(dsn) as con:
            for name in result.tables:
                query = sql.SQL("select t::text from {} t").format(sql.Identifier("marts", name))
                texts += [r[0] for r in con.execute(query).fetchall()]
        assert len(texts) > 100
        assert leaks("\n".join(texts), personal) == []
