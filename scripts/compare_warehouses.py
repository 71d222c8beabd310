"""Compare the tables of two warehouse files, e.g. the demo built before and after a refactoring of the dbt
models that must not change the marts:

    ZI_DATA_DIR=/tmp/zi_before .venv/bin/zi build        # on the old commit
    ZI_DATA_DIR=/tmp/zi_after .venv/bin/zi build         # on the new one
    .venv/bin/python scripts/compare_warehouses.py /tmp/zi_before/warehouse/zi.duckdb \
        /tmp/zi_after/warehouse/zi.duckdb --schemas reference intermediate marts

For every table of the schemas: the same columns (names, types, order) and the same rows as multisets (row
order does not count). Columns that name the build run differ by design and are left out (RUN_COLUMNS).
Exit 1 when anything differs.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

#: Columns whose values name the build run, not the data: mart_data_quality's run and its derived key.
RUN_COLUMNS = {"mart_data_quality": ("result_id", "run_id", "run_started_at")}


def compare(before: str, after: str, schemas: list[str]) -> list[str]:
    con = duckdb.connect()
    con.execute("attach ? as b (read_only)", [before])
    con.execute("attach ? as a (read_only)", [after])

    def tables(db: str, schema: str) -> set[str]:
        return {
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name = ? and schema_name = ?", [db, schema]
            ).fetchall()
        }

    def columns(db: str, schema: str, table: str) -> list[tuple]:
        return con.execute(
            "select column_name, data_type from duckdb_columns() where database_name = ? and "
            "schema_name = ? and table_name = ? order by column_index",
            [db, schema, table],
        ).fetchall()

    lines, differences = [], 0
    for schema in schemas:
        in_before, in_after = tables("b", schema), tables("a", schema)
        if in_before != in_after:
            differences += 1
            lines.append(
                f"{schema}: only before {sorted(in_before - in_after)}, only after {sorted(in_after - in_before)}"
            )
        for table in sorted(in_before & in_after):
            if columns("b", schema, table) != columns("a", schema, table):
                differences += 1
                lines.append(f"{schema}.{table}: columns differ")
                continue
            ignored = RUN_COLUMNS.get(table, ())
            select = f"select * {'exclude (' + ', '.join(ignored) + ')' if ignored else ''} from {{}}.{schema}.{table}"
            only_before, only_after = (
                con.execute(f"select count(*) from ({select.format(x)} except all {select.format(y)})").fetchone()[0]
                for x, y in (("b", "a"), ("a", "b"))
            )
            rows = con.execute(f"select count(*) from b.{schema}.{table}").fetchone()[0]
            same = only_before == only_after == 0
            differences += not same
            note = f" (without {', '.join(ignored)})" if ignored else ""
            lines.append(
                f"{schema}.{table}: {rows} rows, "
                + ("identical" if same else f"DIFFER: {only_before} rows only before, {only_after} only after")
                + note
            )
    lines.append("all identical" if not differences else f"{differences} differences")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--schemas", nargs="+", default=["reference", "intermediate", "marts"])
    args = parser.parse_args(argv)
    lines = compare(args.before, args.after, args.schemas)
    print("\n".join(lines))
    return 0 if lines[-1] == "all identical" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
