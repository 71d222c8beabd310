"""Publishing the public marts into PostgreSQL for BI over the network, and the read-only role that reads them.

Why one module of ~800 lines: it is one protocol (resolve the release, lock, stage, swap, grant, record) whose
steps depend on each other's locks, transactions and recovery rules; split across files, the order that makes
a killed publish harmless (below) could no longer be read in one place.

What belongs here: reading the *published* DuckDB file (never the working warehouse), mapping DuckDB types
to PostgreSQL types, loading every mart with ``COPY`` into a staging schema, swapping the staging schema in
as ``marts`` in one transaction, and maintaining the read-only role for BI tools and controllers.

How a publish runs (``publish_to_postgres``):

1. The published DuckDB file is resolved to its release (``published/releases/<id>/zi.duckdb``, beside it the
   manifest with each mart's checksum) and every table of schema ``marts`` is read (never a fixed list); a
   mart with a personal column (``accounting.PERSONAL_COLUMNS``) stops the publish before PostgreSQL is touched.
2. Connect with a bounded retry and backoff; an unreachable server raises ``PostgresUnavailable`` with a
   German message. The DuckDB publish is never touched: this module only reads the published file.
3. A session-level advisory lock serialises publishes into the same schema; leftover staging schemas of
   killed runs are dropped under that lock. ``zi_publish.published_marts`` (not readable by the reader role)
   records which release's checksum each mart in PostgreSQL holds: a mart whose checksum and columns are
   unchanged is not copied again, so PostgreSQL keeps exactly the marts of the current release.
4. One transaction builds ``marts_staging_<token>`` with the changed and new marts: ``CREATE TABLE`` with
   mapped types, ``COPY ... FROM STDIN (FORMAT csv)`` fed with Arrow record batches that pyarrow writes as CSV
   (C speed, no per-row Python), table and column comments. A crash rolls the whole staging build back.
5. One swap transaction: ``LOCK TABLE`` every mart it changes ``NOWAIT`` (a reader holding a transaction on
   them keeps its complete old set; we retry with backoff instead of queueing behind it, so readers are never
   blocked by a waiting publish), then per changed mart ``DELETE`` its rows and ``INSERT`` the staged ones (new
   marts are moved in, removed marts dropped), re-apply the role's grants. Rows are replaced, tables are not:
   a ``REPEATABLE READ``/``SERIALIZABLE`` transaction that took its snapshot before the swap keeps seeing
   the old rows of the same tables (MVCC), where a replaced table would look empty to it. Only a mart whose
   columns changed (a code change) is replaced as a table. Readers see the old or the new set, never a mix.
   The quality history (``publish.RUN_HISTORY_MARTS``) is not replaced whole: the state table keeps its rows
   and hash per run (from the release's manifest), and only the runs that differ are staged, deleted and
   inserted; the table's row count must then be the release's, else the publish is repeated with the whole
   mart (docs/performance.md, fix 25).

Environment (never in the repository):

- ``ZI_POSTGRES_DSN``: libpq connection string or URI of the publishing account. Without it, the libpq
  variables ``PGHOST``/``PGHOSTADDR``/``PGSERVICE``/``PGDATABASE`` (plus ``PGPORT``, ``PGUSER``,
  ``PGPASSWORD``, ``PGSSLMODE`` ...) configure the connection. Neither set: PostgreSQL is not configured.
- ``ZI_POSTGRES_READER_ROLE``: name of the read-only role (default ``zi_reader``).
- ``ZI_POSTGRES_READER_PASSWORD``: its password; unset leaves an existing password unchanged (a new role
  then has none and cannot log in with a password until the DBA sets one).
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql
from psycopg.types.json import Jsonb

from zi_warehouse.accounting import PERSONAL_COLUMNS
from zi_warehouse.config import POSTGRES_DSN_ENV, postgres_dsn
from zi_warehouse.german import format_number
from zi_warehouse.publish import PUBLIC_SCHEMA, RUN_HISTORY_MARTS, public_tables
from zi_warehouse.releases import DUCKDB_FILE, read_manifest
from zi_warehouse.warehouse import quote_ident

log = logging.getLogger(__name__)

READER_ROLE_ENV = "ZI_POSTGRES_READER_ROLE"
READER_PASSWORD_ENV = "ZI_POSTGRES_READER_PASSWORD"
DEFAULT_READER_ROLE = "zi_reader"
STAGING_PREFIX = "_staging_"  # staging schema: <schema>_staging_<token>
#: Which release each mart in PostgreSQL comes from (its checksum); readable by the publishing account only.
STATE_SCHEMA = "zi_publish"
STATE_TABLE = "published_marts"
#: format_type() spelling of the mapped types where it differs from how the mapping writes them.
_FORMAT_TYPE = {
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
}
#: Rows per Arrow batch sent through COPY: bounded memory (~tens of MB for wide marts), few round trips.
BATCH_ROWS = 100_000


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server could not be reached within the bounded retries."""


class PostgresPublishError(RuntimeError):
    """The publish reached PostgreSQL but could not complete (the previous marts stay in place)."""


@dataclass
class PostgresPublishResult:
    schema: str
    reader_role: str
    tables: dict[str, int]  # mart -> rows
    seconds: float
    swap_attempts: int
    findings: list[str] = field(default_factory=list)  # German notes on the role's privileges, if any
    written: list[str] = field(default_factory=list)  # marts copied (changed or new)
    unchanged: list[str] = field(default_factory=list)  # marts already holding this content
    dropped: list[str] = field(default_factory=list)  # marts no longer in the release
    release_id: str | None = None
    runs_replaced: dict[str, int] = field(default_factory=dict)  # history mart -> runs copied (not the whole mart)


# --------------------------------------------------------------------------------------------------
# Configuration from the environment
# --------------------------------------------------------------------------------------------------


def reader_role_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(READER_ROLE_ENV, "").strip() or DEFAULT_READER_ROLE


def describe_dsn(dsn: str) -> str:
    """Host, port, database and user of a DSN for messages: never the password."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(ungültige Verbindungsangabe)"
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or "?"
    user = params.get("user") or os.environ.get("PGUSER") or "?"
    return f"{user}@{host}:{port}/{dbname}"


def connect(
    dsn: str,
    *,
    attempts: int = 5,
    first_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
    connect_timeout_s: int = 10,
    on_retry: Callable[[str], None] | None = None,
) -> psycopg.Connection:
    """Connect with a bounded retry (``attempts`` tries, delays doubling from ``first_delay_s`` up to
    ``max_delay_s``); raise ``PostgresUnavailable`` with a German message when every try failed.

    With the defaults the wait is at most 1 + 2 + 4 + 8 s plus four connect timeouts.
    """
    delay = first_delay_s
    last_error: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return psycopg.connect(
                dsn,
                autocommit=True,
                connect_timeout=connect_timeout_s,
                application_name="zi_publish_postgres",
                client_encoding="utf8",
            )
        except psycopg.OperationalError as exc:
            last_error = exc
            if attempt == attempts:
                break
            message = (
                f"PostgreSQL {describe_dsn(dsn)} nicht erreichbar (Versuch {attempt} von {attempts}), "
                f"neuer Versuch in {format_number(delay, 1, 's')}: {_first_line(exc)}"
            )
            (on_retry or log.warning)(message)
            time.sleep(delay)
            delay = min(delay * 2, max_delay_s)
    raise PostgresUnavailable(
        f"PostgreSQL {describe_dsn(dsn)} ist nach {attempts} Versuchen nicht erreichbar "
        f"(letzter Fehler: {_first_line(last_error)}). Die Marts wurden nicht nach PostgreSQL "
        f"veröffentlicht; die veröffentlichte DuckDB-Datei ist davon nicht betroffen. "
        f"Bitte {POSTGRES_DSN_ENV} (oder PGHOST/PGPORT/PGUSER/PGDATABASE) und die Erreichbarkeit des Servers prüfen."
    ) from last_error


def _first_line(exc: BaseException | None) -> str:
    text = str(exc or "").strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------------------------------
# Reading the published DuckDB file and mapping types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MartColumn:
    name: str
    duckdb_type: str
    postgres_type: str
    select_expr: str  # DuckDB expression that yields a value PostgreSQL's CSV input parses
    is_nullable: bool
    comment: str | None


@dataclass(frozen=True)
class Mart:
    name: str
    columns: tuple[MartColumn, ...]
    comment: str | None
    rows: int


# DuckDB type id -> PostgreSQL type for the types Arrow's CSV writer renders in a form PostgreSQL reads
# exactly (integers, decimals, ISO dates and timestamps, shortest round-trip doubles, true/false).
_NATIVE = {
    "boolean": "boolean",
    "tinyint": "smallint",
    "smallint": "smallint",
    "integer": "integer",
    "bigint": "bigint",
    "utinyint": "smallint",
    "usmallint": "integer",
    "uinteger": "bigint",
    "float": "real",
    "double": "double precision",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp_ms": "timestamp",
    "timestamp_s": "timestamp",
    "timestamp_ns": "timestamp",  # PostgreSQL keeps microseconds: nanoseconds are rounded
    "timestamp with time zone": "timestamptz",
    "varchar": "text",
}
# Types sent as DuckDB's text rendering, which PostgreSQL's input functions read.
_AS_TEXT = {
    "ubigint": "numeric(20,0)",
    "hugeint": "numeric(39,0)",
    "uhugeint": "numeric(39,0)",
    "varint": "numeric",
    "bignum": "numeric",
    "time": "time",
    "time with time zone": "timetz",
    "interval": "interval",
    "uuid": "uuid",
    "enum": "text",
    "bit": "text",
}
_NESTED = {"list", "array", "struct", "map", "union"}


def postgres_column(name: str, dtype: duckdb.typing.DuckDBPyType) -> tuple[str, str]:
    """(PostgreSQL type, DuckDB select expression) for one mart column."""
    type_id = dtype.id
    column = quote_ident(name)
    if type_id == "decimal":
        children = dict(dtype.children)
        return f"numeric({children['precision']},{children['scale']})", column
    if type_id in _NATIVE:
        return _NATIVE[type_id], column
    if type_id in _AS_TEXT:
        return _AS_TEXT[type_id], f"cast({column} as varchar)"
    if type_id == "blob":
        return "bytea", f"'\\x' || hex({column})"  # PostgreSQL's bytea hex input format
    if type_id in _NESTED:
        return "jsonb", f"cast(to_json({column}) as varchar)"
    return "text", f"cast({column} as varchar)"


def read_marts(con: duckdb.DuckDBPyConnection) -> list[Mart]:
    """Every table of schema ``marts`` with its mapped columns, comments and row count."""
    table_comments = dict(
        con.execute(
            "select table_name, comment from duckdb_tables() where schema_name = ? "
            "and database_name = current_database()",
            [PUBLIC_SCHEMA],
        ).fetchall()
    )
    marts = []
    for name in public_tables(con):
        meta = {
            row[0]: (row[1], row[2])
            for row in con.execute(
                "select column_name, is_nullable, comment from duckdb_columns() where schema_name = ? "
                "and table_name = ? and database_name = current_database()",
                [PUBLIC_SCHEMA, name],
            ).fetchall()
        }
        relation = con.table(f"{quote_ident(PUBLIC_SCHEMA)}.{quote_ident(name)}")
        columns = []
        for column_name, dtype in zip(relation.columns, relation.types):
            pg_type, expr = postgres_column(column_name, dtype)
            is_nullable, comment = meta.get(column_name, (True, None))
            columns.append(MartColumn(column_name, str(dtype), pg_type, expr, bool(is_nullable), comment))
        rows = con.execute(f"select count(*) from {quote_ident(PUBLIC_SCHEMA)}.{quote_ident(name)}").fetchall()[0][0]
        marts.append(Mart(name, tuple(columns), table_comments.get(name), rows))
    return marts


def check_no_personal_columns(marts: list[Mart]) -> None:
    found = [f"{m.name}.{c.name}" for m in marts for c in m.columns if c.name.lower() in PERSONAL_COLUMNS]
    if found:
        raise PostgresPublishError(
            "Personenbezogene Spalten in veröffentlichten Marts: "
            + ", ".join(found)
            + ". Solche Daten dürfen nicht nach PostgreSQL; das Modell muss sie weglassen."
        )


# --------------------------------------------------------------------------------------------------
# The read-only role
# --------------------------------------------------------------------------------------------------


#: The read-only role's attributes: (pg_roles column, wanted value, the clause that sets it).
READER_ATTRIBUTES = (
    ("rolcanlogin", True, "login"),
    ("rolsuper", False, "nosuperuser"),
    ("rolcreatedb", False, "nocreatedb"),
    ("rolcreaterole", False, "nocreaterole"),
    ("rolreplication", False, "noreplication"),
    ("rolbypassrls", False, "nobypassrls"),
    ("rolinherit", False, "noinherit"),
)
_READ_ONLY_SETTING = "default_transaction_read_only=on"


def ensure_reader_role(con: psycopg.Connection, role: str, password: str | None) -> list[str]:
    """Create or re-assert the read-only role: login, no other attribute, read-only by default, the password.

    An existing role is altered only where it differs: PostgreSQL lets only a superuser name the superuser or
    replication attribute in ALTER ROLE, even to switch it off, so re-asserting every attribute would fail for
    a publishing account with CREATEROLE and take the password change down with it. Attributes, password and
    the read-only default are set one by one, so one refused change does not undo the others. Returns German
    findings for what the publishing account was not allowed to do (the DBA's task).
    """
    findings: list[str] = []
    ident = sql.Identifier(role)
    current = con.execute(
        "select " + ", ".join(column for column, _, _ in READER_ATTRIBUTES) + ", rolconfig from pg_roles "
        "where rolname = %s",
        [role],
    ).fetchone()
    if current is None:
        clauses = " ".join(clause for _, _, clause in READER_ATTRIBUTES)
        try:
            with con.transaction():
                con.execute(sql.SQL("create role {} " + clauses).format(ident))
        except psycopg.errors.InsufficientPrivilege as exc:
            raise PostgresPublishError(
                f"Die Leserolle {role} existiert nicht und das veröffentlichende Konto darf keine Rollen "
                f"anlegen ({_first_line(exc)}). Bitte einmalig als Administrator: CREATE ROLE {role} LOGIN NOINHERIT "
                f"PASSWORD '…'; ALTER ROLE {role} SET default_transaction_read_only = on;"
            ) from exc
        wrong, config = [], []
    else:
        wrong = [clause for (_, wanted, clause), value in zip(READER_ATTRIBUTES, current) if value != wanted]
        config = current[-1] or []

    def attempt(statement: sql.Composable, what: str, as_admin: str) -> None:
        try:
            with con.transaction():
                con.execute(statement)
        except psycopg.errors.InsufficientPrivilege as exc:
            findings.append(
                f"{what} der Rolle {role} nicht gesetzt: das veröffentlichende Konto darf diese Rolle nicht ändern "
                f"(Server: {_first_line(exc)}). Dem Konto CREATEROLE geben oder als Administrator: {as_admin}"
            )

    if wrong:
        clauses = " ".join(wrong)
        attempt(
            sql.SQL("alter role {} " + clauses).format(ident),
            f"{'Attribut' if len(wrong) == 1 else 'Attribute'} {clauses.upper()}",
            f"ALTER ROLE {role} {clauses.upper()};",
        )
    if password:
        # Hashed here (SCRAM, as the server stores it): the statement, which the server may log (failed
        # statements by default, all DDL with log_statement = ddl), never carries the password itself.
        # Literal: utility statements take no bind parameters; psycopg quotes the value.
        secret = con.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
        attempt(
            sql.SQL("alter role {} password {}").format(ident, sql.Literal(secret)),
            "Passwort",
            f"ALTER ROLE {role} PASSWORD '…'; dann {READER_PASSWORD_ENV} leeren.",
        )
    if _READ_ONLY_SETTING not in config:
        # Defence in depth: every transaction of the role starts read-only (privileges are the real guard).
        attempt(
            sql.SQL("alter role {} set default_transaction_read_only = on").format(ident),
            "Lesemodus (default_transaction_read_only)",
            f"ALTER ROLE {role} SET default_transaction_read_only = on;",
        )
    try:
        with con.transaction():
            con.execute(sql.SQL("grant connect on database {} to {}").format(sql.Identifier(con.info.dbname), ident))
    except psycopg.errors.InsufficientPrivilege:
        findings.append(f"CONNECT auf die Datenbank für {role} nicht vergeben (nur der Eigentümer darf das).")
    return findings


def grant_reader(con: psycopg.Connection, schema: str, role: str) -> None:
    """Read access to every table of ``schema`` now, and to tables created there later by this account."""
    s, r = sql.Identifier(schema), sql.Identifier(role)
    con.execute(sql.SQL("revoke all on schema {} from public").format(s))
    con.execute(sql.SQL("grant usage on schema {} to {}").format(s, r))
    con.execute(sql.SQL("grant select on all tables in schema {} to {}").format(s, r))
    # Default privileges are tied to the schema object, which each swap replaces: set them again.
    con.execute(sql.SQL("alter default privileges in schema {} grant select on tables to {}").format(s, r))


def audit_reader(con: psycopg.Connection, role: str, schema: str = PUBLIC_SCHEMA) -> list[str]:
    """German findings if the role can do more than read ``schema``: empty when it is truly read-only."""
    findings = []
    attrs = con.execute(
        "select rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls from pg_roles where rolname = %s",
        [role],
    ).fetchone()
    if attrs is None:
        return [f"Rolle {role} existiert nicht."]
    if any(attrs):
        findings.append(f"Rolle {role} hat Sonderrechte (SUPERUSER/CREATEDB/CREATEROLE/REPLICATION/BYPASSRLS).")
    member_of = con.execute(
        "select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid "
        "join pg_roles u on u.oid = m.member where u.rolname = %s",
        [role],
    ).fetchall()
    if member_of:
        findings.append(f"Rolle {role} ist Mitglied von {', '.join(r[0] for r in member_of)}.")
    readable = con.execute(
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind in ('r', 'v', 'm', 'p', 'f') and n.nspname not in (%s, 'pg_catalog', 'information_schema') "
        "and n.nspname not like 'pg\\_toast%%' and has_table_privilege(%s, c.oid, 'SELECT')",
        [schema, role],
    ).fetchall()
    if readable:
        findings.append(
            f"Rolle {role} kann außerhalb von {schema} lesen: " + ", ".join(f"{s}.{t}" for s, t in readable[:20])
        )
    writable = con.execute(
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind in ('r', 'p', 'v', 'f') and n.nspname not in ('pg_catalog', 'information_schema') "
        "and (has_table_privilege(%s, c.oid, 'INSERT') or has_table_privilege(%s, c.oid, 'UPDATE') "
        "or has_table_privilege(%s, c.oid, 'DELETE') or has_table_privilege(%s, c.oid, 'TRUNCATE'))",
        [role, role, role, role],
    ).fetchall()
    if writable:
        findings.append(f"Rolle {role} kann schreiben in: " + ", ".join(f"{s}.{t}" for s, t in writable[:20]))
    creatable = con.execute(
        "select nspname from pg_namespace where nspname not like 'pg\\_%%' and nspname <> 'information_schema' "
        "and has_schema_privilege(%s, oid, 'CREATE')",
        [role],
    ).fetchall()
    if creatable:
        schemas = ", ".join(r[0] for r in creatable)
        findings.append(
            f"Rolle {role} darf Objekte anlegen in Schema {schemas} "
            f"(Abhilfe: REVOKE CREATE ON SCHEMA {schemas} FROM PUBLIC)."
        )
    if con.execute("select has_database_privilege(%s, current_database(), 'CREATE')", [role]).fetchone()[0]:
        findings.append(f"Rolle {role} darf Schemas anlegen (CREATE auf der Datenbank).")
    return findings


# --------------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------------


def publish_to_postgres(
    published_duckdb: Path,
    dsn: str | None = None,
    *,
    schema: str = PUBLIC_SCHEMA,
    reader_role: str | None = None,
    reader_password: str | None = None,
    connect_attempts: int = 5,
    retry_first_delay_s: float = 1.0,
    swap_timeout_s: float = 600.0,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[str], None] | None = None,
) -> PostgresPublishResult:
    """Publish every table of schema ``marts`` of the published DuckDB file into PostgreSQL schema ``schema``.

    ``dsn`` None: from the environment (``ZI_POSTGRES_DSN`` or PG* variables). ``reader_role``/``reader_password``
    None: ``ZI_POSTGRES_READER_ROLE`` (default ``zi_reader``) and ``ZI_POSTGRES_READER_PASSWORD``.
    ``swap_timeout_s`` bounds how long the swap waits for readers that hold transactions on the old marts.
    """
    say = progress or log.info
    started = time.perf_counter()
    if dsn is None:
        dsn = postgres_dsn()
        if dsn is None:
            raise PostgresPublishError(
                f"Kein PostgreSQL konfiguriert: {POSTGRES_DSN_ENV} oder PGHOST/PGDATABASE setzen."
            )
    role = reader_role or reader_role_name()
    password = reader_password if reader_password is not None else os.environ.get(READER_PASSWORD_ENV) or None
    if not Path(published_duckdb).exists():
        raise PostgresPublishError(f"Kein veröffentlichtes Warehouse unter {published_duckdb}.")

    # The release the stable path points to now, resolved once: a DuckDB publish that switches ``current``
    # meanwhile does not change what we read (a release never changes, and we keep the file we opened).
    source_path = Path(published_duckdb).resolve()
    manifest = read_manifest(source_path.parent) if source_path.name == DUCKDB_FILE else None
    checksums = {name: m.get("checksum") for name, m in (manifest or {}).get("marts", {}).items()}
    history = {
        name: m["runs"]
        for name, m in (manifest or {}).get("marts", {}).items()
        if name in RUN_HISTORY_MARTS and isinstance(m.get("runs"), dict)
    }
    release_id = (manifest or {}).get("release_id")
    source = duckdb.connect(str(source_path), read_only=True)
    try:
        marts = read_marts(source)
        if not marts:
            raise PostgresPublishError(f"Keine Tabellen im Schema {PUBLIC_SCHEMA} von {published_duckdb}.")
        check_no_personal_columns(marts)
        con = connect(dsn, attempts=connect_attempts, first_delay_s=retry_first_delay_s, on_retry=say)
        try:
            if con.info.user == role:
                raise PostgresPublishError(
                    f"Die Leserolle {role} darf nicht das veröffentlichende Konto sein ({POSTGRES_DSN_ENV} prüfen)."
                )
            _serialise_publishes(con, schema, swap_timeout_s)
            _drop_leftover_staging(con, schema)
            findings = ensure_reader_role(con, role, password)
            _ensure_state_table(con)
            for by_runs in (True, False):  # by runs where the state allows; the whole mart if that does not add up
                plan = _plan(con, schema, marts, checksums, history if by_runs else {})
                staging = f"{schema}{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
                attempts = 0
                try:
                    staged = [m for m in marts if m.name in plan.staged]
                    if staged:
                        _build_staging(con, source, staging, staged, plan.runs, history, batch_rows, say)
                    if staged or plan.dropped or not plan.schema_exists:
                        attempts = _swap(
                            con, staging, schema, role, plan, marts, checksums, history, release_id, swap_timeout_s, say
                        )
                    else:
                        say(f"PostgreSQL: alle {len(marts)} Marts in {schema} sind schon auf dem Stand dieses Release")
                    break
                except _RunsDoNotAddUp as exc:
                    say(f"PostgreSQL: {exc}; die Mart wird ganz geschrieben")
                finally:
                    _drop_schema_quietly(con, staging)
            for name in plan.rows:  # planner statistics after the rows changed (outside the swap: no lock held)
                con.execute(sql.SQL("analyze {}").format(sql.Identifier(schema, name)))
            findings += audit_reader(con, role, schema)
        except psycopg.Error as exc:  # e.g. the server went away mid-publish: the old marts stay valid
            raise PostgresPublishError(
                f"Veröffentlichung nach PostgreSQL {describe_dsn(dsn)} abgebrochen ({_first_line(exc)}); "
                f"die bisherigen Marts in Schema {schema} bleiben unverändert gültig."
            ) from exc
        finally:
            con.close()
    finally:
        source.close()
    seconds = time.perf_counter() - started
    say(
        f"{len(plan.staged)} von {len(marts)} Marts nach PostgreSQL-Schema {schema} geschrieben, "
        f"{len(plan.unchanged)} unverändert ({format_number(seconds, 1, 's')})"
    )
    for finding in findings:
        log.warning(finding)
    return PostgresPublishResult(
        schema=schema,
        reader_role=role,
        tables={m.name: m.rows for m in marts},
        seconds=seconds,
        swap_attempts=attempts,
        findings=findings,
        written=sorted(plan.staged),
        unchanged=sorted(plan.unchanged),
        dropped=sorted(plan.dropped),
        release_id=release_id,
        runs_replaced={name: len(runs) for name, runs in plan.runs.items()},
    )


@dataclass
class _Plan:
    """What the swap does with each mart."""

    schema_exists: bool
    unchanged: set[str] = field(default_factory=set)  # same checksum and columns: nothing to do
    rows: set[str] = field(default_factory=set)  # same columns: the rows are replaced (MVCC-safe)
    tables: set[str] = field(default_factory=set)  # new, or columns changed: the staged table moves in
    dropped: set[str] = field(default_factory=set)  # no longer a mart of the release
    runs: dict[str, list[str]] = field(default_factory=dict)  # history marts among ``rows``: the runs to replace

    @property
    def staged(self) -> set[str]:
        return self.rows | self.tables


def _ensure_state_table(con: psycopg.Connection) -> None:
    with con.transaction():
        con.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(STATE_SCHEMA)))
        con.execute(sql.SQL("revoke all on schema {} from public").format(sql.Identifier(STATE_SCHEMA)))
        con.execute(
            sql.SQL(
                "create table if not exists {} (schema_name text not null, mart text not null, checksum text, "
                "release_id text, published_at timestamptz not null default now(), primary key (schema_name, mart))"
            ).format(sql.Identifier(STATE_SCHEMA, STATE_TABLE))
        )
        # A history mart's rows and hash per run (RUN_HISTORY_MARTS); added to state tables of earlier versions.
        con.execute(
            sql.SQL("alter table {} add column if not exists runs jsonb").format(
                sql.Identifier(STATE_SCHEMA, STATE_TABLE)
            )
        )


class _RunsDoNotAddUp(Exception):
    """A history mart replaced run by run does not have the release's rows (its table was changed by hand)."""


def _plan(
    con: psycopg.Connection,
    schema: str,
    marts: list[Mart],
    checksums: dict[str, str | None],
    history: dict[str, dict[str, list]],
) -> _Plan:
    schema_exists = con.execute("select 1 from pg_namespace where nspname = %s", [schema]).fetchone() is not None
    plan = _Plan(schema_exists)
    existing: dict[str, list[tuple]] = {}
    for table, column, kind, not_null in con.execute(
        "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace join pg_attribute a on a.attrelid = c.oid "
        "where n.nspname = %s and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped "
        "order by c.relname, a.attnum",
        [schema],
    ).fetchall():
        existing.setdefault(table, []).append((column, kind, not_null))
    others = {
        r[0]
        for r in con.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relkind in ('v', 'm', 'p', 'f')",
            [schema],
        ).fetchall()
    }
    held, held_runs = {}, {}
    for mart_name, checksum, runs in con.execute(
        sql.SQL("select mart, checksum, runs from {} where schema_name = %s").format(
            sql.Identifier(STATE_SCHEMA, STATE_TABLE)
        ),
        [schema],
    ).fetchall():
        held[mart_name], held_runs[mart_name] = checksum, runs
    for mart in marts:
        wanted = [(c.name, _FORMAT_TYPE.get(c.postgres_type, c.postgres_type), not c.is_nullable) for c in mart.columns]
        if mart.name in others or mart.name not in existing or existing[mart.name] != wanted:
            plan.tables.add(mart.name)
        elif checksums.get(mart.name) and held.get(mart.name) == checksums[mart.name]:
            plan.unchanged.add(mart.name)
        else:
            plan.rows.add(mart.name)
            old, new = held_runs.get(mart.name), history.get(mart.name)
            if isinstance(old, dict) and new is not None:
                plan.runs[mart.name] = sorted(run for run in old.keys() | new.keys() if old.get(run) != new.get(run))
    plan.dropped = (set(existing) | others) - {m.name for m in marts}
    return plan


def _serialise_publishes(con: psycopg.Connection, schema: str, timeout_s: float) -> None:
    """Session advisory lock per target schema: two publishes never build or swap at the same time."""
    con.execute(sql.SQL("set lock_timeout = {}").format(sql.Literal(f"{int(timeout_s * 1000)}ms")))
    try:
        con.execute("select pg_advisory_lock(hashtext(%s))", [f"zi_publish_postgres:{schema}"])
    except psycopg.errors.LockNotAvailable as exc:
        raise PostgresPublishError(
            f"Eine andere Veröffentlichung nach {schema} läuft seit über {timeout_s:.0f} s; bitte später erneut."
        ) from exc
    finally:
        con.execute("reset lock_timeout")


def _staging_like(schema: str) -> str:
    escaped = (schema + STAGING_PREFIX).replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    return escaped + "%"


def _drop_leftover_staging(con: psycopg.Connection, schema: str) -> None:
    """Staging schemas of killed runs (safe: we hold the advisory lock, nobody else is building)."""
    for (name,) in con.execute(
        "select nspname from pg_namespace where nspname like %s", [_staging_like(schema)]
    ).fetchall():
        _drop_schema_quietly(con, name)


def _drop_schema_quietly(con: psycopg.Connection, name: str) -> None:
    try:
        if con.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            con.rollback()
        con.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(name)))
    except psycopg.Error as exc:  # the connection may be gone; the next publish cleans up
        log.warning("Staging-Schema %s nicht entfernt: %s", name, _first_line(exc))


def _build_staging(
    con: psycopg.Connection,
    source: duckdb.DuckDBPyConnection,
    staging: str,
    marts: list[Mart],
    runs: dict[str, list[str]],
    history: dict[str, dict[str, list]],
    batch_rows: int,
    say: Callable[[str], None],
) -> None:
    """One transaction: the staging schema with every mart (of a history mart in ``runs``: only those runs),
    loaded by COPY, with comments."""
    csv_options = pa_csv.WriteOptions(include_header=False, batch_size=batch_rows)
    with con.transaction():
        con.execute(sql.SQL("create schema {}").format(sql.Identifier(staging)))
        con.execute(sql.SQL("revoke all on schema {} from public").format(sql.Identifier(staging)))
        for mart in marts:
            table = sql.Identifier(staging, mart.name)
            column_defs = sql.SQL(", ").join(
                sql.SQL("{} {}{}").format(
                    sql.Identifier(c.name),
                    sql.SQL(c.postgres_type),  # from the fixed mapping above, never from data
                    sql.SQL("" if c.is_nullable else " not null"),
                )
                for c in mart.columns
            )
            con.execute(sql.SQL("create table {} ({})").format(table, column_defs))
            column_list = sql.SQL(", ").join(sql.Identifier(c.name) for c in mart.columns)
            query = "select {} from {}.{}".format(
                ", ".join(c.select_expr for c in mart.columns), quote_ident(PUBLIC_SCHEMA), quote_ident(mart.name)
            )
            expected = mart.rows
            if mart.name in runs:
                column = quote_ident(RUN_HISTORY_MARTS[mart.name].run_column)
                wanted = ", ".join("'" + run.replace("'", "''") + "'" for run in runs[mart.name]) or "null"
                query += f" where {column}::varchar in ({wanted})"
                expected = sum(history[mart.name][run][0] for run in runs[mart.name] if run in history[mart.name])
            copied = 0
            try:
                with con.cursor().copy(
                    sql.SQL("copy {} ({}) from stdin (format csv)").format(table, column_list)
                ) as copy:
                    for batch in source.sql(query).to_arrow_reader(batch_rows):
                        if batch.num_rows == 0:
                            continue
                        buffer = io.BytesIO()
                        pa_csv.write_csv(pa.Table.from_batches([batch]), buffer, csv_options)
                        copy.write(buffer.getbuffer())
                        copied += batch.num_rows
            except psycopg.Error as exc:
                raise PostgresPublishError(
                    f"Mart {mart.name} konnte nicht nach PostgreSQL kopiert werden: {_first_line(exc)}"
                ) from exc
            if copied != expected:
                raise PostgresPublishError(f"Mart {mart.name}: {copied} Zeilen kopiert, {expected} erwartet.")
            if mart.comment:
                con.execute(sql.SQL("comment on table {} is {}").format(table, sql.Literal(mart.comment)))
            for c in mart.columns:
                if c.comment:
                    con.execute(
                        sql.SQL("comment on column {}.{} is {}").format(
                            table, sql.Identifier(c.name), sql.Literal(c.comment)
                        )
                    )
            say(f"PostgreSQL: {mart.name} ({copied} Zeilen) in {staging} geladen")
    for mart in marts:  # planner statistics for BI queries, before readers see the tables
        con.execute(sql.SQL("analyze {}").format(sql.Identifier(staging, mart.name)))


def _swap(
    con: psycopg.Connection,
    staging: str,
    schema: str,
    role: str,
    plan: _Plan,
    marts: list[Mart],
    checksums: dict[str, str | None],
    history: dict[str, dict[str, list]],
    release_id: str | None,
    timeout_s: float,
    say: Callable[[str], None],
) -> int:
    """Bring ``schema`` to the release in one transaction; returns the number of attempts.

    ``LOCK TABLE ... NOWAIT`` on every relation it changes: if a reader holds one, we roll back (releasing
    what we got, so nobody queues behind us) and try again with backoff, for at most ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    attempt = 0
    by_name = {m.name: m for m in marts}
    while True:
        attempt += 1
        try:
            with con.transaction():
                con.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
                touched = sorted(n for n in (plan.rows | plan.tables | plan.dropped) if _exists(con, schema, n))
                if touched:
                    con.execute(
                        sql.SQL("lock table {} in access exclusive mode nowait").format(
                            sql.SQL(", ").join(sql.Identifier(schema, name) for name in touched)
                        )
                    )
                for name in sorted(plan.rows):
                    target = sql.Identifier(schema, name)
                    if name in plan.runs:  # a history mart: only its changed runs
                        run_column = sql.Identifier(RUN_HISTORY_MARTS[name].run_column)
                        con.execute(
                            sql.SQL("delete from {} where {}::text = any(%s)").format(target, run_column),
                            [plan.runs[name]],
                        )
                    else:
                        con.execute(sql.SQL("delete from {}").format(target))
                    con.execute(
                        sql.SQL("insert into {} select * from {}").format(target, sql.Identifier(staging, name))
                    )
                    if name in plan.runs:
                        rows = con.execute(sql.SQL("select count(*) from {}").format(target)).fetchone()[0]
                        if rows != by_name[name].rows:
                            raise _RunsDoNotAddUp(f"{name} hätte {rows} statt {by_name[name].rows} Zeilen")
                    _comment(con, schema, by_name[name])
                for name in sorted(plan.tables | plan.dropped):
                    if name in touched:
                        kind = con.execute(
                            "select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                            "where n.nspname = %s and c.relname = %s",
                            [schema, name],
                        ).fetchone()[0]
                        keyword = {"v": "view", "m": "materialized view", "f": "foreign table"}.get(kind, "table")
                        con.execute(
                            sql.SQL("drop {} {} cascade").format(sql.SQL(keyword), sql.Identifier(schema, name))
                        )
                for name in sorted(plan.tables):
                    con.execute(
                        sql.SQL("alter table {} set schema {}").format(
                            sql.Identifier(staging, name), sql.Identifier(schema)
                        )
                    )
                state = sql.Identifier(STATE_SCHEMA, STATE_TABLE)
                con.execute(sql.SQL("delete from {} where schema_name = %s").format(state), [schema])
                with con.cursor() as cur:
                    cur.executemany(
                        sql.SQL(
                            "insert into {} (schema_name, mart, checksum, release_id, runs) values (%s, %s, %s, %s, %s)"
                        ).format(state),
                        [
                            [schema, m.name, checksums.get(m.name), release_id, _runs_json(history.get(m.name))]
                            for m in marts
                        ],
                    )
                if release_id:
                    con.execute(
                        sql.SQL("comment on schema {} is {}").format(
                            sql.Identifier(schema), sql.Literal(f"Marts des ZI-Warehouse, Release {release_id}")
                        )
                    )
                grant_reader(con, schema, role)
            return attempt
        except psycopg.errors.LockNotAvailable:
            if time.monotonic() + delay > deadline:
                raise PostgresPublishError(
                    f"Die Marts in PostgreSQL-Schema {schema} werden seit über {timeout_s:.0f} s von "
                    "lesenden Transaktionen gehalten; die neue Fassung wurde nicht eingetauscht, die "
                    "bisherige bleibt gültig. Lange offene Transaktionen (pg_stat_activity) beenden."
                ) from None
            if attempt == 1:
                say(f"PostgreSQL: Leser halten {schema}; Austausch wird wiederholt")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _runs_json(runs: dict[str, list] | None) -> Jsonb | None:
    return None if runs is None else Jsonb(runs)


def _exists(con: psycopg.Connection, schema: str, name: str) -> bool:
    return (
        con.execute(
            "select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s "
            "and c.relname = %s",
            [schema, name],
        ).fetchone()
        is not None
    )


def _comment(con: psycopg.Connection, schema: str, mart: Mart) -> None:
    """Table and column comments of a mart whose rows were replaced (its descriptions may have changed)."""
    table = sql.Identifier(schema, mart.name)
    con.execute(sql.SQL("comment on table {} is {}").format(table, sql.Literal(mart.comment)))
    for c in mart.columns:
        con.execute(
            sql.SQL("comment on column {}.{} is {}").format(table, sql.Identifier(c.name), sql.Literal(c.comment))
        )
