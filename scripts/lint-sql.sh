#!/usr/bin/env bash
# Lints the dbt SQL (models/, dbt_project/: models, macros, singular tests, analyses) with sqlfluff; the rules
# and the reasons for the ones switched off are in .sqlfluff, excluded paths in .sqlfluffignore. Exits non-zero
# on any violation, so CI fails. `scripts/lint-sql.sh --fix` first applies what sqlfluff can fix itself (layout,
# join types); long lines and unqualified references it reports are fixed by hand.
# Works offline: the Jinja templater renders ref/source/var and the project's macros without dbt or a database.
set -euo pipefail
cd "$(dirname "$0")/.."
SQLFLUFF="${SQLFLUFF:-.venv/bin/sqlfluff}"
[ -x "$SQLFLUFF" ] || SQLFLUFF="$(command -v sqlfluff)"
if [ "${1:-}" = "--fix" ]; then
  "$SQLFLUFF" fix models dbt_project --processes 1 --disable-progress-bar --quiet || true
fi
"$SQLFLUFF" lint models dbt_project --processes 1 --disable-progress-bar
