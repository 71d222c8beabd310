"""The layout of the dbt project's YAML files, checked and applied in one place.

Rules (the cal-itp data-infra layout, see docs/architecture.md):
- a folder of models holds one ``_<folder>__models.yml`` describing exactly the models of that folder, a
  staging folder one ``_<folder>__sources.yml``, and dbt unit tests go to ``_<folder>__unit_tests.yml``;
  the seeds are described in ``seeds/_reference__seeds.yml`` (their schema is ``reference``), snapshots in
  ``dbt_project/snapshots/_<domain>__snapshots.yml``. A file holds ``version: 2`` and one kind of entry.
- keys in a fixed order (name and description first, tests and columns last, see KEY_ORDER);
- indentation two spaces, list items indented under their key; a description is double-quoted or a
  folded block (``>``): --fix turns a plain or single-quoted one into the first when it fits on one line,
  else into the second, wrapped at WIDTH characters.

``scripts/dbt_yaml_layout.py`` checks (exit 1 and the files to fix), ``--fix`` rewrites the files; comments
and flow-style entries (``{name: x, data_tests: [...]}``) are kept. Unit-test files are checked (name, key
order) but not rewritten: their fixture rows are wrapped by hand. tests/test_dbt_project.py runs the check.
"""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, FoldedScalarString

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where dbt reads YAML: model-paths, seed-paths and snapshot-paths of dbt_project.yml.
YAML_ROOTS = ("models", "seeds", "dbt_project/snapshots")
WIDTH = 110
#: The kinds of entry a dbt YAML file holds (one kind per file); each names the file's suffix.
KINDS = ("models", "sources", "unit_tests", "seeds", "snapshots")
#: Canonical key order of mappings; keys not listed keep their relative order after the listed ones.
KEY_ORDER = {
    "file": ["version", *KINDS],
    "node": [
        "name",
        "description",
        "model",
        "schema",
        "config",
        "overrides",
        "given",
        "expect",
        "constraints",
        "data_tests",
        "columns",
        "tables",
    ],
    "column": ["name", "data_type", "description", "constraints", "data_tests"],
}


def expected_name(path: Path, kind: str) -> str:
    """The file name an entry kind must live in, in the folder of ``path``."""
    folder = path.parent.name
    if kind == "seeds":
        return "_reference__seeds.yml"
    if kind == "snapshots":
        return path.name  # one domain per snapshot file: _<domain>__snapshots.yml, named by its content
    return f"_{folder}__{kind}.yml"


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap plain scalars; descriptions are wrapped here, by _description
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.brace_single_entry_mapping_in_flow_sequence = True  # keep [not_null, {relationships: ...}] as written
    return yaml


def _reorder(mapping: CommentedMap, order: list[str]) -> None:
    keys = list(mapping.keys())
    wanted = [k for k in order if k in mapping] + [k for k in keys if k not in order]
    if wanted == keys:
        return
    items = [(k, mapping[k]) for k in wanted]
    comments = {k: mapping.ca.items.get(k) for k in keys}
    for k in keys:
        del mapping[k]
    for position, (k, v) in enumerate(items):
        mapping.insert(position, k, v)
        if comments.get(k):
            mapping.ca.items[k] = comments[k]


def _description(text, indent: int):
    """A folded block or a double-quoted string stays as written (hand-wrapped lines are fine); a plain or
    single-quoted one becomes double-quoted when it fits on its line, else a folded block wrapped at WIDTH."""
    if isinstance(text, (FoldedScalarString, DoubleQuotedScalarString)):
        return text
    text = " ".join(str(text).split())
    if indent + len("description: ") + len(text) + 2 <= WIDTH:
        return DoubleQuotedScalarString(text)
    lines = textwrap.wrap(text, width=WIDTH - indent - 2, break_long_words=False, break_on_hyphens=False)
    folded = FoldedScalarString(" ".join(lines) + "\n")
    folded.fold_pos = []  # ruamel folds the block at these offsets: one per wrapped line
    position = 0
    for line in lines[:-1]:
        position += len(line)
        folded.fold_pos.append(position)
        position += 1
    return folded


def _normalise(node, role: str, indent: int) -> None:
    if isinstance(node, CommentedMap):
        _reorder(node, KEY_ORDER.get(role, []))
        if "description" in node and isinstance(node["description"], str) and not node.fa.flow_style():
            node["description"] = _description(node["description"], indent)
        for key, value in node.items():
            if key == "columns":
                child_role = "column"
            elif key in KINDS or key == "tables":
                child_role = "node"
            else:
                child_role = "other"
            _normalise(value, child_role, indent + 2)
    elif isinstance(node, CommentedSeq):
        for item in node:
            _normalise(item, role, indent + 2)


def formatted(path: Path) -> str:
    """The file's text in the project's layout."""
    yaml = _yaml()
    text = path.read_text(encoding="utf-8")
    data = yaml.load(text)
    if "unit_tests" in data:
        return text  # fixture rows are data laid out by hand (wrapped flow mappings): checked, not rewritten
    _reorder(data, KEY_ORDER["file"])
    for kind in KINDS:
        if kind in data:
            _normalise(data[kind], "node", 2)
    out = io.StringIO()
    yaml.dump(data, out)
    text = out.getvalue()
    # one blank line after the version, as in every hand-written file
    return text.replace("version: 2\n", "version: 2\n\n", 1).replace("version: 2\n\n\n", "version: 2\n\n", 1)


def yaml_files(root: Path = REPO_ROOT) -> list[Path]:
    return sorted(p for folder in YAML_ROOTS for p in (root / folder).rglob("*.y*ml"))


def problems(root: Path = REPO_ROOT) -> list[str]:
    """Every deviation from the layout, as a sentence naming the file."""
    found = []
    yaml = _yaml()
    for path in yaml_files(root):
        rel = path.relative_to(root)
        if path.suffix != ".yml":
            found.append(f"{rel}: YAML files end in .yml")
        data = yaml.load(path.read_text(encoding="utf-8"))
        kinds = [k for k in data if k in KINDS]
        if data.get("version") != 2 or len(kinds) != 1 or set(data) - {"version", *kinds}:
            found.append(f"{rel}: holds version: 2 and exactly one of {', '.join(KINDS)} (found {list(data)})")
            continue
        if path.name != expected_name(path, kinds[0]):
            found.append(f"{rel}: {kinds[0]} belong in {expected_name(path, kinds[0])}")
        if kinds[0] == "models":
            declared = {entry["name"] for entry in data["models"]}
            present = {p.stem for p in path.parent.iterdir() if p.suffix in (".sql", ".py")}
            if declared != present:
                found.append(
                    f"{rel}: describes {sorted(declared - present)} not in its folder, "
                    f"misses {sorted(present - declared)}"
                )
        if kinds[0] == "unit_tests":
            order = KEY_ORDER["node"]
            for entry in data["unit_tests"]:
                keys = [k for k in entry if k in order]
                if keys != sorted(keys, key=order.index):
                    found.append(f"{rel}: unit test {entry.get('name')}: keys in the order {', '.join(order)}")
        if path.read_text(encoding="utf-8") != formatted(path):
            found.append(f"{rel}: layout (key order, indentation, descriptions): run scripts/dbt_yaml_layout.py --fix")
    for folder in sorted({p.parent for p in (root / "models").rglob("*") if p.suffix in (".sql", ".py")}):
        if not (folder / f"_{folder.name}__models.yml").exists():
            found.append(f"{folder.relative_to(root)}: no _{folder.name}__models.yml")
    return found


def main(argv: list[str]) -> int:
    if "--fix" in argv:
        for path in yaml_files():
            text = formatted(path)
            if text != path.read_text(encoding="utf-8"):
                path.write_text(text, encoding="utf-8")
                print(f"formatted {path.relative_to(REPO_ROOT)}")
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
