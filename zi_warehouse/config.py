"""Where things live and which parameters the figures depend on; everything comes from the environment.

One place for paths under ``ZI_DATA_DIR`` and for the domain parameters that
docs/domain.md#assumptions-and-open-points marks as assumptions (baseline year, ETp, factor edition), so
that nothing is hard-coded in readers or models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SEEDS_DIR = REPO_ROOT / "seeds"

#: Source families: one landing subfolder and one Dagster asset group each.
SOURCE_FAMILIES = ("forecasts", "funding", "climate", "trees", "surfaces")


@dataclass(frozen=True)
class Paths:
    """The data directory layout (documented in docs/data-directory.md)."""

    data_dir: Path

    @property
    def landing(self) -> Path:
        return self.data_dir / "landing"

    def landing_for(self, source_family: str) -> Path:
        return self.landing / source_family

    @property
    def warehouse_dir(self) -> Path:
        return self.data_dir / "warehouse"

    @property
    def warehouse(self) -> Path:
        """The working DuckDB file: only the pipeline opens it (one writer at a time)."""
        return self.warehouse_dir / "zi.duckdb"

    @property
    def published(self) -> Path:
        return self.data_dir / "published"

    @property
    def published_duckdb(self) -> Path:
        return self.published / "zi.duckdb"

    @property
    def published_parquet(self) -> Path:
        return self.published / "parquet"

    @property
    def feedback(self) -> Path:
        """Feedback workbooks for the senders (one per municipality and submission)."""
        return self.data_dir / "feedback"

    @property
    def outbox(self) -> Path:
        """E-mails to the coordinators, one per municipality and run, and the record of what was sent."""
        return self.data_dir / "outbox"

    @property
    def reports(self) -> Path:
        return self.data_dir / "reports"

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance of this data directory (runs, materialisations, check history, schedules):
        ``$DAGSTER_HOME`` when set, else ``<data directory>/dagster``."""
        home = os.environ.get("DAGSTER_HOME")
        return Path(home).resolve() if home else self.data_dir / "dagster"

    def ensure(self) -> Paths:
        for family in SOURCE_FAMILIES:
            self.landing_for(family).mkdir(parents=True, exist_ok=True)
        for d in (self.warehouse_dir, self.published, self.feedback, self.reports):
            d.mkdir(parents=True, exist_ok=True)
        return self


@cache
def _dbt_vars() -> dict:
    import yaml

    return yaml.safe_load((REPO_ROOT / "dbt_project.yml").read_text(encoding="utf-8")).get("vars", {})


def dbt_var(name: str):
    """A parameter of the figures kept as a dbt var in ``dbt_project.yml`` (their one home), for Python that
    needs the same value (checks, demo data). ``KeyError`` for a var that is not there."""
    return _dbt_vars()[name]


def data_dir() -> Path:
    return Path(os.environ.get("ZI_DATA_DIR", REPO_ROOT / "data")).resolve()


def paths() -> Paths:
    return Paths(data_dir())


# --- PostgreSQL servers configured in the environment ---------------------------------------------------
# Here and not in the modules that connect (publish_postgres.py, sources/funding_db.py), so that asking
# whether one is configured (each build does) does not import psycopg and pyarrow.

#: The PostgreSQL the marts are published to, besides the DuckDB file (zi_warehouse/publish_postgres.py).
POSTGRES_DSN_ENV = "ZI_POSTGRES_DSN"
#: libpq variables that by themselves say "a PostgreSQL server is configured" (PGPORT/PGUSER alone do not).
LIBPQ_TARGET_ENV = ("PGHOST", "PGHOSTADDR", "PGSERVICE", "PGDATABASE")
#: The funding database read directly (zi_warehouse/sources/funding_db.py); ``env``: libpq's PG* variables.
FUNDING_DB_DSN_ENV = "ZI_FUNDING_DB_DSN"


def postgres_dsn(env: Mapping[str, str] | None = None) -> str | None:
    """The publishing target's connection string; ``""`` means "libpq reads PG* variables"; None: not configured."""
    env = os.environ if env is None else env
    dsn = env.get(POSTGRES_DSN_ENV, "").strip()
    if dsn:
        return dsn
    if any(env.get(name, "").strip() for name in LIBPQ_TARGET_ENV):
        return ""
    return None


def funding_db_dsn() -> str | None:
    """The funding database's connection string; ``""`` means libpq's PG* variables; None: the channel is off."""
    value = os.environ.get(FUNDING_DB_DSN_ENV, "").strip()
    if not value:
        return None
    return "" if value.lower() == "env" else value


#: The address ``zi serve`` last served the UI of this data directory's instance on (in ``DAGSTER_HOME``).
UI_URL_FILE = "ui_url"


def dagster_ui_url() -> str:
    """Where the data team opens the Dagster UI: ``ZI_DAGSTER_UI_URL``, else the address ``zi serve`` last
    served this data directory on (another port than 3000, ``--port``), else ``make dev``'s default."""
    if os.environ.get("ZI_DAGSTER_UI_URL"):
        return os.environ["ZI_DAGSTER_UI_URL"].rstrip("/")
    try:
        served = (paths().dagster_home / UI_URL_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        served = ""
    return (served or "http://localhost:3000").rstrip("/")


def run_url(run_id: str) -> str:
    """A run's page in the Dagster UI (build summaries, alerts)."""
    return f"{dagster_ui_url()}/runs/{run_id}"
