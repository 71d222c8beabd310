"""``zi-dbt``: the dbt command line, started in the data directory's warehouse folder.

dbt re-parses the whole project (about 9 s here) whenever the connection settings differ from those its
partial-parse file was written with, and the warehouse path differs per data directory (``ZI_DATA_DIR``).
Started from the warehouse folder with the relative path ``zi.duckdb`` (``ZI_DBT_DATABASE``, read by
dbt_project/profiles.yml), the settings are the same for every data directory, so even the first build in
a fresh one only re-parses what changed since ``make setup`` parsed the project. Dagster's dbt resource
runs this instead of ``dbt`` (dagster_zi/dbt.py); ``dbt`` itself still works from the repository root.
"""

import os
import sys

def main() -> None:
    from zi_warehouse import config

    paths = config.paths()
    warehouse = paths.warehouse
    os.environ["ZI_DATA_DIR"] = str(paths.data_dir)  # absolute: dbt's Python models must not see a relative one
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    os.environ["ZI_DBT_DATABASE"] = warehouse.name  # relative: the same value ``make setup`` parses with
    os.environ.setdefault("DBT_PROJECT_DIR", str(config.REPO_ROOT))
    os.environ.setdefault("DBT_PROFILES_DIR", str(config.REPO_ROOT / "dbt_project"))
    os.chdir(warehouse.parent)
    from dbt.cli.main import cli

    sys.exit(cli())


if __name__ == "__main__":
    main()
