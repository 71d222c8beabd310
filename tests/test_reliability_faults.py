"""Faults: PostgreSQL unreachable, a corrupt file among good ones, a full disk, a read-only data directory.

- PostgreSQL unreachable: the Dagster publish assets run on a copy of the demo build; the DuckDB publish
  succeeds, the PostgreSQL step fails with a German message after its bounded retries (the retry timing
  itself is proven in tests/test_serving_postgres.py::test_unreachable_server_fails_clearly_after_bounded_retries).
- A corrupt file is rejected with its reason while the other files of every family load.
- Full disk and read-only directory: a real small tmpfs (the tests run as root), remounted read-only for
  the second case; without root the disk-full case falls back to an ENOSPC raised at the OS boundary.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from test_forecasts_reader import good_row, write_xlsx
from test_reliability_crash import marts_fingerprint
from zi_warehouse import publish as publish_module
from zi_warehouse import warehouse
from zi_warehouse.ingest import ingest
from zi_warehouse.publish import PublishError, publish
from zi_warehouse.sources import climate, forecasts, surfaces, trees

REAL_DWD = Path(__file__).resolve().parents[2] / "shared" / "real-data" / "dwd"
DWD_PRODUCT = REAL_DWD / "produkt_klima_tag_19861001_19870131_00429.txt"
CAMPAIGN_HEADER = "Ausgabestelle;Kommune;Obstart;Anzahl;Ausgabedatum;davon nicht abgeholt"
SURFACES_HEADER = "Flurstück;Fläche m2;Flächenart;Kanalanschluss;Kommune;Gestaltungsraum"


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL unreachable ---------------------------------------------------------------------------


def test_postgres_unreachable_fails_its_step_clearly_while_the_duckdb_publish_succeeds(
    demo_build, tmp_path, monkeypatch
):
    from dagster import DagsterEventType, DagsterInstance, materialize

    from dagster_zi.publish import published_warehouse
    from dagster_zi.serving import published_postgres

    data_dir = tmp_path / "data"
    shutil.copytree(demo_build["data_dir"], data_dir, symlinks=True)
    before = (data_dir / "published" / "zi.duckdb").stat().st_ino
    port = dead_port()
    monkeypatch.setenv("ZI_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ZI_POSTGRES_DSN", f"postgresql://zi@127.0.0.1:{port}/zi")
    instance = DagsterInstance.ephemeral()
    result = materialize([published_warehouse, published_postgres], instance=instance, raise_on_error=False)

    failed = {e.step_key: e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE}
    succeeded = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_SUCCESS}
    assert "published_warehouse" in succeeded and set(failed) == {"published_postgres"}
    message = failed["published_postgres"].event_specific_data.error.to_string()
    assert "PostgresUnavailable" in message and "nicht erreichbar" in message and f"127.0.0.1:{port}" in message
    assert "Versuchen" in message and "DuckDB-Datei ist davon nicht betroffen" in message
    retries = [r.user_message for r in instance.all_logs(result.run_id) if "neuer Versuch" in r.user_message]
    assert len(retries) >= 2, "the unreachable server was not retried"
    # The DuckDB publish was done anew (new file swapped in) and holds exactly the working marts.
    published = data_dir / "published" / "zi.duckdb"
    assert published.stat().st_ino != before
    assert marts_fingerprint(published) == marts_fingerprint(data_dir / "warehouse" / "zi.duckdb")


# --- a corrupt file among good ones, in every file family -------------------------------------------------


def test_a_corrupt_file_is_rejected_with_its_reason_while_the_others_load(tmp_path):
    landing = tmp_path / "landing"
    folder = landing / "forecasts"
    folder.mkdir(parents=True)
    good = write_xlsx(folder / "Prognose_Bochum_2022-Q4.xlsx", [good_row("BO-1"), good_row("BO-2")])
    (folder / "Prognose_Herne_2022-Q4.xlsx").write_bytes(good.read_bytes()[:1500])  # truncated download
    (landing / "trees" / "campaign").mkdir(parents=True)
    (landing / "trees" / "campaign" / "klimabaeume_2021.csv").write_text(
        f"{CAMPAIGN_HEADER}\nBetriebshof Duisburg;Duisburg;Apfel;100;30.10.2021;3\n", encoding="utf-8"
    )
    (landing / "trees" / "campaign" / "klimabaeume_kaputt.csv").write_bytes(b"\x00\xff\xfe garbage \x00" * 50)
    (landing / "surfaces").mkdir()
    (landing / "surfaces" / "flaechen_bochum.csv").write_text(
        f"{SURFACES_HEADER}\n0510-001-00001;125,5;Steildach;Mischwasser;Bochum;\n", encoding="utf-8"
    )
    (landing / "surfaces" / "kaputt.parquet").write_bytes(b"PAR1 not really parquet")
    (landing / "climate").mkdir()
    shutil.copy(DWD_PRODUCT, landing / "climate" / DWD_PRODUCT.name)
    (landing / "climate" / "tageswerte_KL_00430_akt.zip").write_bytes(b"PK\x03\x04 truncated zip")

    corrupt = {
        "forecasts": "Prognose_Herne_2022-Q4.xlsx",
        "trees": "klimabaeume_kaputt.csv",
        "surfaces": "kaputt.parquet",
        "climate": "tageswerte_KL_00430_akt.zip",
    }
    with warehouse.connect(tmp_path / "zi.duckdb") as con:
        for source in (forecasts, trees, surfaces, climate):
            ingest(con, source, landing, log=lambda m: None)
        ledger = con.execute(
            "select source_family, file_name, outcome, rows_read, rows_loaded, rows_rejected, error_message "
            "from raw.ingestion_files"
        ).fetchall()
        reasons = dict(
            con.execute(
                "select file_name, rule || ': ' || message_de from raw.ingestion_files join raw.rejected_rows "
                "using (source_family, source_file) where outcome = 'failed'"
            ).fetchall()
        )
    by_name = {row[1]: row for row in ledger}
    for family, name in corrupt.items():
        _, _, outcome, *_, message = by_name[name]
        assert outcome == "failed" and message, (family, by_name[name])
        assert name in reasons and reasons[name].split(": ", 1)[1], reasons
    others = [row for row in ledger if row[1] not in corrupt.values()]
    assert {row[0] for row in others} == set(corrupt)  # every family still had good files
    for _family, name, outcome, read, loaded, rejected, _ in others:
        assert outcome in ("loaded", "partially_loaded"), (name, outcome)
        assert loaded > 0 and read == loaded + rejected


# --- full disk and read-only directory -------------------------------------------------------------------


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    """Mount a small tmpfs at ``path`` (root only); yields False when mounting is not possible."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _warehouse(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists marts")
    con.execute(
        f"create or replace table marts.mart_a as select range as id, md5(range::varchar) as h from range({rows})"
    )
    con.close()


def _published_rows(published: Path) -> tuple[int, int]:
    con = duckdb.connect(str(published / "zi.duckdb"), read_only=True)
    try:
        in_duckdb = con.execute("select count(*) from marts.mart_a").fetchone()[0]
    finally:
        con.close()
    return in_duckdb, pq.read_table(published / "parquet" / "mart_a.parquet").num_rows


def test_full_disk_gives_a_german_error_and_keeps_the_published_copy(tmp_path, monkeypatch):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 100)
    with tmpfs(tmp_path / "disk", "3m") as mounted:
        published = tmp_path / "disk" / "published"
        publish(wh, published)
        before = sorted(p.name for p in published.iterdir())
        _warehouse(wh, 300_000)  # ~15 MB of hashes: cannot fit into 3 MB
        if not mounted:  # no root: the disk fills at the OS boundary instead

            def full(_path):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(publish_module.releases, "fsync_path", full)
        with pytest.raises(PublishError) as error:
            publish(wh, published)
        assert "kein Speicherplatz mehr" in str(error.value)
        assert "bisher veröffentlichte Fassung bleibt unverändert" in str(error.value)
        assert _published_rows(published) == (100, 100)
        assert sorted(p.name for p in published.iterdir()) == before  # no half-written file, no .wal left
        _warehouse(wh, 200)  # space again: the next publish works
        publish(wh, published)
        assert _published_rows(published) == (200, 200)


def test_read_only_data_directory_gives_a_german_error_and_keeps_the_published_copy(tmp_path):
    wh = tmp_path / "wh.duckdb"
    _warehouse(wh, 100)
    with tmpfs(tmp_path / "disk", "4m") as mounted:
        if not mounted:
            pytest.fail("a read-only directory needs a mount (run the tests as root); chmod does not bind root")
        published = tmp_path / "disk" / "published"
        publish(wh, published)
        before = sorted(p.name for p in published.iterdir())
        subprocess.run(["mount", "-o", "remount,ro", str(tmp_path / "disk")], check=True)
        _warehouse(wh, 50)
        with pytest.raises(PublishError) as error:
            publish(wh, published)
        assert "schreibgeschützt" in str(error.value)
        assert "bisher veröffentlichte Fassung bleibt unverändert" in str(error.value)
        assert _published_rows(published) == (100, 100)
        assert sorted(p.name for p in published.iterdir()) == before


def test_build_on_a_read_only_data_directory_fails_in_german_and_publishes_nothing(demo_build, tmp_path):
    """The whole `zi build` on a data directory mounted read-only: a German summary, nothing changed."""
    from conftest import run_zi

    source = demo_build["data_dir"]
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(source), str(target)]).returncode != 0:
        pytest.fail("a read-only data directory needs a bind mount (run the tests as root)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        digest = marts_fingerprint(source / "published" / "zi.duckdb")
        result = run_zi(target, "build", check=False)
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert marts_fingerprint(source / "published" / "zi.duckdb") == digest
    assert "Build fehlgeschlagen" in output and "Nichts veröffentlicht" in output, output[-3000:]
    assert "Traceback" not in output
    assert marts_fingerprint(source / "published" / "zi.duckdb") == digest


_HOLD_WAREHOUSE = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)  # DuckDB's file lock: no other process may write it
print("open", flush=True)
sys.stdin.read()
"""


def test_a_failed_build_names_each_steps_error_in_one_line_and_keeps_the_traces_in_the_steps_output(
    demo_build, tmp_path
):
    """A walkthrough's failed build printed 356 lines of English stack traces (Dagster's ERROR events) and left
    the steps' output empty; now the summary names each failed step with its error and the traces go there."""
    from conftest import copy_built_data_dir, run_zi

    data_dir = copy_built_data_dir(demo_build["data_dir"], tmp_path / "data")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_WAREHOUSE, str(data_dir / "warehouse" / "zi.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        result = run_zi(data_dir, "build", "--always", check=False)
    finally:
        holder.communicate("", timeout=30)
    terminal = result.stdout + result.stderr
    assert result.returncode == 1, terminal
    assert "Build fehlgeschlagen" in terminal and "Nichts veröffentlicht" in terminal, terminal[-3000:]
    assert "Traceback" not in terminal and "STEP_FAILURE" not in terminal, terminal[-3000:]
    # the ingests failed on the same lock: one line names them all with the error, in German, naming the
    # process that holds the file (DuckDB's English text and Python's exception class stay in the steps' output)
    flat = re.sub(r"\s+", " ", terminal)  # the console wraps long lines
    assert re.search(
        rf" raw_\w+, raw_\w+[^:]*: Die Datei \S+zi\.duckdb ist von einem anderen Programm geöffnet "
        rf"\(Prozess {holder.pid}: python[\d.]*\): es beenden oder warten, bis es fertig ist\.",
        flat,
    ), terminal[-3000:]
    assert "IOException" not in terminal and "Could not set lock" not in terminal, terminal[-3000:]
    assert len(terminal.splitlines()) < 60, terminal
    # no check ran: the summary says so rather than counting "0 bestanden"
    assert "Dagster-Prüfungen: keine gelaufen" in terminal and "0 bestanden" not in terminal, terminal[-3000:]
    steps_output = (data_dir / "warehouse" / "dbt_target" / "zi-build-ausgabe.log").read_text(encoding="utf-8")
    assert "STEP_FAILURE" in steps_output and "lock" in steps_output.lower(), steps_output[-3000:]


def test_a_warehouse_open_in_another_process_is_named_in_german(tmp_path):
    """DuckDB refuses a second writer with "IO Error: Could not set lock on file …"; the pipeline says in German
    which process holds the file, and keeps DuckDB's error as the cause."""
    import duckdb

    from zi_warehouse import warehouse

    path = tmp_path / "zi.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_WAREHOUSE, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(warehouse.WarehouseLocked) as raised, warehouse.connect(path):
            pass
    finally:
        holder.communicate("", timeout=30)
    assert str(raised.value).startswith(
        f"Die Datei {path} ist von einem anderen Programm geöffnet (Prozess {holder.pid}: python"
    )
    assert isinstance(raised.value.__cause__, duckdb.IOException)
    assert warehouse.locked_message(path, duckdb.IOException("IO Error: disk full")) is None
