"""``zi-dbt``: the dbt command line, started in the data directory's warehouse folder.

dbt re-parses the whole project (about 9 s here) whenever the connection settings differ from those its
partial-parse file was written with, and the warehouse path differs per data directory (``ZI_DATA_DIR``).
Started from the warehouse folder with the relative path ``zi.duckdb`` (``ZI_DBT_DATABASE``, read by
dbt_project/profiles.yml), the settings are the same for every data directory, so even the first build in
a fresh one only re-parses what changed since ``make setup`` parsed the project. Dagster's dbt resource
runs this instead of ``dbt`` (dagster_zi/dbt.py); ``dbt`` itself still works from the repository root.
Inside a run the run worker started, the command runs in the worker's warm dbt (zi_warehouse/dbt_server.py).
"""

import os
import shutil
import sys
from pathlib import Path

from zi_warehouse import config


def main() -> None:
    paths = config.paths()
    warehouse = paths.warehouse
    os.environ["ZI_DATA_DIR"] = str(paths.data_dir)  # absolute: dbt's Python models must not see a relative one
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    os.environ["ZI_DBT_DATABASE"] = warehouse.name  # relative: the same value ``make setup`` parses with
    os.environ.setdefault("DBT_PROJECT_DIR", str(config.REPO_ROOT))
    os.environ.setdefault("DBT_PROFILES_DIR", str(config.REPO_ROOT / "dbt_project"))
    os.chdir(warehouse.parent)
    from zi_warehouse.dbt_server import run_via_server

    code = run_via_server(sys.argv[1:], dict(os.environ), os.getcwd())  # the run worker's warm dbt, if any
    if code is not None:
        sys.exit(code)
    from dbt.cli.main import cli

    sys.exit(cli())


#: dbt run folders kept per data directory (dbt.log, compiled SQL; the builds write no JSON artefacts).
KEEP_DBT_RUNS = 3
PARTIAL_PARSE = "partial_parse.msgpack"
#: A target folder chosen by whoever started this process (e.g. a test) is used as it is.
_CALLERS_TARGET_PATH = os.environ.get("DBT_TARGET_PATH")


def target_folder() -> Path | None:
    """Point dbt at this data directory's target folder, holding the newest partial-parse file.

    dagster-dbt starts every invocation from ``$DBT_TARGET_PATH/partial_parse.msgpack`` and writes each
    invocation's artefacts into a folder of its own below it. One target folder per data directory
    (``warehouse/dbt_target``), whose partial-parse file is the one the last invocation left (or, the first
    time, the one ``make setup`` wrote), lets every invocation parse only what changed. Older run folders
    beyond the newest ``KEEP_DBT_RUNS`` are removed. ``DBT_TARGET_PATH`` set by the caller is left alone.
    """
    if _CALLERS_TARGET_PATH:
        return None
    target = config.paths().warehouse_dir / "dbt_target"
    try:
        target.mkdir(parents=True, exist_ok=True)
        _rotate(target)
        seed = config.REPO_ROOT / "target" / PARTIAL_PARSE
        if not (target / PARTIAL_PARSE).exists() and seed.exists():
            shutil.copyfile(seed, target / PARTIAL_PARSE)  # first build: valid, the profile is the same
    except OSError:
        return None  # e.g. a read-only data directory: the build fails in its steps and says so in German
    os.environ["DBT_TARGET_PATH"] = str(target)
    return target


def _rotate(target: Path) -> None:
    """Keep the newest run's partial-parse file for the next invocation; drop all but the newest run folders."""
    runs = sorted((d for d in target.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime, reverse=True)
    for run in runs:
        newest = run / PARTIAL_PARSE
        if newest.exists():
            tmp = target / (PARTIAL_PARSE + ".tmp")
            shutil.copyfile(newest, tmp)
            os.replace(tmp, target / PARTIAL_PARSE)
            break
    for old in runs[KEEP_DBT_RUNS:]:
        shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    main()
