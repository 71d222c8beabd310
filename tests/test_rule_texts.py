"""Every rule key the code can emit, and every check name the controlling layer shows, has a German text in
``seeds/rule_texts.csv`` (issue 16 item 2), read through ``reference.rule_text``.

The keys are collected from the code itself, not from a list kept beside it:

- **Rejection rules** (``raw.rejected_rows.rule``, ``FileResult.fail``/``block``): the abstract syntax tree of
  every module in ``zi_warehouse/`` is searched for the places that hand a rule to the ledger: ``Rejection``,
  ``FileResult.fail``/``block``, every class that takes a ``rule`` (exception classes whose ``__init__`` has
  one, dataclasses with a ``rule`` field: FileFailure, FileProblem, ParseError, Rule, Failure today) and every
  function that passes its own ``rule`` parameter on to one of these (found by fixpoint, e.g. the ``err``
  helpers of the readers). A literal argument is a key; an omitted one is the parameter's default;
  ``<object>.rule`` was collected where that object was built. Any other expression is a *dynamic* site and
  must be listed in ``DYNAMIC_SITES`` with the function that enumerates its keys, so a new way of building a
  rule key fails this test until someone says where its keys come from.
- **Rules computed in SQL** (trees, surfaces: ``'<rule>' as rule`` in union-all queries; funding: the rule
  ``case`` of ``_error_expr``): the SQL the code runs is taken from the modules at run time and parsed.
- **Quality checks** (``marts.mart_data_quality.check_name``): the mart suites as ``quality.suites`` defines
  them (the name format confirmed on one real validation), the "mart exists" results of a real run, and the
  reconciliation and freshness catalogues (tied to the literal check names in their modules).
- **Dagster asset checks**: the committed definitions snapshot (``tests/test_definitions.py`` keeps it equal
  to the loaded Definitions).
"""

from __future__ import annotations

import ast
import csv
import fnmatch
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from zi_warehouse import reference

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "zi_warehouse"
SEED = REPO / "seeds" / "rule_texts.csv"

#: Source family of the rejections a module emits (a default taken from a carrier counts for the call site's
#: module). A module that emits rules and is missing here fails the test.
FAMILIES_OF_MODULE = {
    "zi_warehouse/dwd.py": ("climate",),
    "zi_warehouse/sources/climate.py": ("climate",),
    "zi_warehouse/forecasts/parsing.py": ("forecasts",),
    "zi_warehouse/forecasts/reader.py": ("forecasts",),
    "zi_warehouse/forecasts/validation.py": ("forecasts",),
    "zi_warehouse/sources/forecasts.py": ("forecasts",),
    # the database channel validates with the file channel's code (rows land under family funding_db)
    "zi_warehouse/sources/funding.py": ("funding", "funding_db"),
    "zi_warehouse/sources/funding_db.py": ("funding_db",),
    "zi_warehouse/sources/trees.py": ("trees",),
    "zi_warehouse/trees/geojson.py": ("trees",),
    "zi_warehouse/trees/coordinates.py": ("trees",),
    "zi_warehouse/trees/schemas.py": ("trees",),
    "zi_warehouse/trees/register.py": ("trees",),
    "zi_warehouse/trees/campaign.py": ("trees",),
    "zi_warehouse/boundaries.py": ("trees",),
    "zi_warehouse/sources/surfaces.py": ("surfaces",),
    "zi_warehouse/surfaces/parcels.py": ("surfaces",),
    # shared by the delimited-text readers of trees, surfaces and funding
    "zi_warehouse/delimited.py": ("trees", "surfaces", "funding"),
    "zi_warehouse/columnar.py": ("trees", "surfaces"),
}
#: The ledger's API for a rule (zi_warehouse/accounting.py): (name, positional index of the rule, is a method).
LEDGER_API = (("Rejection", 3, False), ("fail", 1, True), ("block", 1, True))


# --------------------------------------------------------------------------------------------- AST scan
@dataclass(frozen=True)
class Carrier:
    """Something that takes a rule: called by ``name`` with the rule at ``index`` or as keyword ``rule``."""

    name: str
    index: int
    default: str | None
    module: str | None  # a plain function is only called by bare name in its own module; None: anywhere
    is_method: bool = False


@dataclass(frozen=True)
class Site:
    module: str
    function: str  # innermost enclosing function ("<module>" at top level)
    carrier: Carrier
    expr: ast.expr | None  # the rule argument; None when omitted
    forwarded: bool  # the argument is the enclosing function's own parameter (that function is a carrier)


def _modules() -> dict[str, ast.Module]:
    """Every module of the package but the demo writers (they plant mistakes and name the rule that must
    catch each one: expectations about the readers, not rules handed to the ledger)."""
    return {
        str(p.relative_to(REPO)): ast.parse(p.read_text(encoding="utf-8"))
        for p in sorted(PACKAGE.rglob("*.py"))
        if "demo" not in p.relative_to(PACKAGE).parts
    }


def _const_str(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _params(fn: ast.FunctionDef) -> list[ast.arg]:
    return [*fn.args.posonlyargs, *fn.args.args]


def _default(fn: ast.FunctionDef, name: str) -> str | None:
    params = _params(fn)
    defaults = dict(zip([a.arg for a in params][len(params) - len(fn.args.defaults) :], fn.args.defaults))
    return _const_str(defaults.get(name))


def _class_carriers(modules: dict[str, ast.Module]) -> list[Carrier]:
    out = []
    for tree in modules.values():
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            is_dataclass = any("dataclass" in ast.unparse(d) for d in cls.decorator_list)
            fields = [s for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
            init = next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
            if init is not None and "rule" in [a.arg for a in _params(init)]:
                out.append(
                    Carrier(cls.name, [a.arg for a in _params(init)].index("rule") - 1, _default(init, "rule"), None)
                )
            elif is_dataclass and "rule" in [f.target.id for f in fields]:
                field = next(f for f in fields if f.target.id == "rule")
                out.append(Carrier(cls.name, fields.index(field), _const_str(field.value), None))
    return out


def _enclosing(tree: ast.Module) -> dict[ast.AST, ast.FunctionDef | None]:
    """Innermost enclosing function of every node (None at module level)."""
    owner: dict[ast.AST, ast.FunctionDef | None] = {}

    def visit(node, fn):
        for child in ast.iter_child_nodes(node):
            owner[child] = fn
            visit(child, child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn)

    visit(tree, None)
    return owner


def _methods(tree: ast.Module) -> set[ast.FunctionDef]:
    return {f for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body if isinstance(f, ast.FunctionDef)}


def _resolve(call: ast.Call, module: str, carriers: list[Carrier]) -> Carrier | None:
    if isinstance(call.func, ast.Name):
        name, by_attribute = call.func.id, False
    elif isinstance(call.func, ast.Attribute):
        name, by_attribute = call.func.attr, True
    else:
        return None
    for c in carriers:
        if c.name != name:
            continue
        if c.is_method and not by_attribute:
            continue
        if c.module is not None and (by_attribute or c.module != module):
            continue
        return c
    return None


def _rule_arg(call: ast.Call, carrier: Carrier) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == "rule":
            return kw.value
    return call.args[carrier.index] if len(call.args) > carrier.index else None


def emission_sites() -> list[Site]:
    """Every call that hands a rule to the ledger, directly or through a carrier (found by fixpoint)."""
    modules = _modules()
    carriers = [Carrier(n, i, None, None, m) for n, i, m in LEDGER_API] + _class_carriers(modules)
    # FileResult.fail's default rule: taken from its signature, like any other carrier's default
    accounting = modules["zi_warehouse/accounting.py"]
    for fn in (n for n in ast.walk(accounting) if isinstance(n, ast.FunctionDef) and n.name in ("fail", "block")):
        carriers = [
            Carrier(c.name, c.index, _default(fn, "rule"), None, True) if c.name == fn.name else c for c in carriers
        ]
    owners = {m: _enclosing(t) for m, t in modules.items()}
    methods = {m: _methods(t) for m, t in modules.items()}
    while True:
        sites, new = [], []
        for module, tree in modules.items():
            for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                carrier = _resolve(call, module, carriers)
                if carrier is None:
                    continue
                fn = owners[module].get(call)
                expr = _rule_arg(call, carrier)
                forwarded = fn is not None and isinstance(expr, ast.Name) and expr.id in [a.arg for a in _params(fn)]
                sites.append(Site(module, fn.name if fn else "<module>", carrier, expr, forwarded))
                if forwarded:
                    is_method = fn in methods[module]
                    index = [a.arg for a in _params(fn)].index(expr.id) - (1 if is_method else 0)
                    forwarder = Carrier(fn.name, index, _default(fn, expr.id), None if is_method else module, is_method)
                    if not any(c.name == forwarder.name and c.module == forwarder.module for c in carriers):
                        new.append(forwarder)
        if not new:
            return sites
        carriers += new


# ------------------------------------------------------------------------------ rules computed in SQL
def _split_top_level(text: str, sep: str = ",") -> list[str]:
    items, depth, quote, current = [], 0, False, []
    for ch in text:
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quote:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return [i.strip() for i in items]


def sql_rule_keys(sql: str) -> list[str]:
    """The 4th item of each union-all part's select list (``'<rule>' [as rule]``) of a rejection query."""
    keys = []
    for part in re.split(r"\bunion\s+all\b", sql, flags=re.I):
        m = re.search(r"\bselect\b(.*?)\bfrom\s+\w+\s+where\b", part, flags=re.I | re.S)
        assert m, f"no select ... from ... where in rejection SQL part: {part[:200]}"
        item = re.sub(r"\s+as\s+rule$", "", _split_top_level(m.group(1))[3], flags=re.I)
        assert re.fullmatch(r"'\w+'", item), f"rule of a rejection SQL part is not a literal: {item}"
        keys.append(item.strip("'"))
    return keys


def _rejection_queries() -> dict[tuple[str, str], list[str]]:
    """(module, name in the module) -> rule keys, for the union-all rejection queries of trees and surfaces
    (their rows become rejections through ``columnar.rejections_from_arrow``)."""
    from zi_warehouse.surfaces import parcels
    from zi_warehouse.trees import campaign, register

    return {
        ("zi_warehouse/surfaces/parcels.py", "_REJECT_SQL"): sql_rule_keys(parcels._REJECT_SQL),
        ("zi_warehouse/trees/register.py", "register_reject_parts"): sql_rule_keys(
            " union all ".join(register.register_reject_parts(2026, "Bochum"))
        ),
        ("zi_warehouse/trees/campaign.py", "_CAMPAIGN_REJECT_SQL"): sql_rule_keys(
            campaign._CAMPAIGN_REJECT_SQL.format(tolerance=200)
        ),
    }


def _funding_sql_rules() -> dict[tuple[str, str], list[str]]:
    """The rules the ``case`` expression of ``funding._error_expr`` can give, over every column of every entity."""
    from zi_warehouse.sources import funding

    rules = set()
    for entity in funding.ENTITIES:
        for col in entity.columns:
            sql = funding._error_expr(col, "x", funding._parse_expr(col, "de", "x"))
            rules |= set(re.findall(r"then '(\w+)'", sql))
    return {("zi_warehouse/sources/funding.py", "_error_expr"): sorted(rules)}


#: SQL texts the pattern below finds that give no rule: the restatements' CASE naming the kind of change.
NOT_RULE_SQL = {("zi_warehouse/restatements.py", "build")}


def _sql_texts_with_a_rule_column() -> set[tuple[str, str]]:
    """(module, top-level name) of every string in the package that names a rule column or a rule in SQL."""
    found = set()
    for module, tree in _modules().items():
        for top in tree.body:
            name = getattr(top, "name", None) or (
                top.targets[0].id if isinstance(top, ast.Assign) and isinstance(top.targets[0], ast.Name) else None
            )
            for node in ast.walk(top):
                text = _const_str(node)
                if text and re.search(r"\bas rule\b|\bthen '", text):
                    found.add((module, name))
    return found - NOT_RULE_SQL


# --------------------------------------------------------------------------------- dynamic sites
def _funding_validate_rules() -> dict[str, list[str]]:
    from zi_warehouse.sources import funding

    return {"zi_warehouse/sources/funding.py": list(funding._RULE_MESSAGES)}


def _rejection_query_rules() -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for (module, _), keys in _rejection_queries().items():
        out[module] += keys
    return dict(out)


#: Rule expressions built at run time, and what enumerates their keys (module -> keys):
#: (module, enclosing function, expression) -> enumerator.
DYNAMIC_SITES = {
    # The rule comes from the SQL ``case`` of _error_expr and _RULE_MESSAGES[rule] gives its message, so the
    # dict's keys are every rule this site can emit (test_every_sql_text_that_computes_a_rule_is_read checks
    # that the SQL gives no other).
    ("zi_warehouse/sources/funding.py", "validate", "rule"): _funding_validate_rules,
    # The rows of the trees and surfaces rejection queries: their rule column.
    ("zi_warehouse/columnar.py", "rejections_from_arrow", "r['rule']"): _rejection_query_rules,
}


def rejection_keys() -> dict[tuple[str, str], set[str]]:
    """(source family, rule key) -> the modules that emit it."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)

    def add(module: str, key: str) -> None:
        assert module in FAMILIES_OF_MODULE, f"{module} emits rule {key!r}: add it to FAMILIES_OF_MODULE"
        for family in FAMILIES_OF_MODULE[module]:
            found[(family, key)].add(module)

    dynamic = set()
    for site in emission_sites():
        expr = site.expr
        if expr is None:
            if site.carrier.default is not None:
                add(site.module, site.carrier.default)
            continue
        if _const_str(expr) is not None:
            add(site.module, expr.value)
        elif isinstance(expr, ast.Attribute) and expr.attr == "rule":
            continue  # carried by an object whose construction is a site of its own
        elif site.forwarded:
            continue  # a carrier passing its own parameter on: its call sites are sites
        else:
            dynamic.add((site.module, site.function, ast.unparse(expr).replace('"', "'")))
    unknown = sorted(dynamic - set(DYNAMIC_SITES))
    assert not unknown, f"rule keys built at run time, not enumerable: {unknown}; list them in DYNAMIC_SITES"
    assert set(DYNAMIC_SITES) <= dynamic, f"DYNAMIC_SITES no longer in the code: {set(DYNAMIC_SITES) - dynamic}"
    for enumerate_keys in DYNAMIC_SITES.values():
        for module, keys in enumerate_keys().items():
            for key in keys:
                add(module, key)
    return dict(found)


def quality_check_names() -> set[str]:
    from zi_warehouse.quality import freshness, reconciliations, suites

    names = {f"{s.mart}.{e.name}" for s in suites.suites() for e in s.expectations}
    names |= {f"reconciliation.{n}" for n in reconciliations.CATALOGUE}
    names |= {f"freshness.{n}" for n in freshness.CATALOGUE}
    names |= {r.check_name for r in suites.run_suites(duckdb.connect())}  # "<mart>.exists" of a real run
    return names


def asset_check_names() -> set[str]:
    snapshot = json.loads((REPO / "tests" / "snapshots" / "definitions.json").read_text(encoding="utf-8"))
    return {entry.split(":", 1)[1] for entry in snapshot["asset_checks"]}


# ------------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def emitted() -> dict[tuple[str, str], set[str]]:
    return rejection_keys()


def test_the_seed_is_well_formed():
    with open(SEED, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["rule_key", "kind", "source_family", "label_de", "explanation_de", "audience"]
        rows = list(reader)
    families = {f for fams in FAMILIES_OF_MODULE.values() for f in fams}
    seen = set()
    for r in rows:
        ident = (r["rule_key"], r["kind"], r["source_family"])
        assert ident not in seen, f"duplicate row {ident}"
        seen.add(ident)
        assert r["kind"] in reference.RULE_KINDS, r
        assert r["audience"] in reference.AUDIENCES, r
        assert r["label_de"].strip() and len(r["label_de"]) <= 60, f"label empty or too long: {r}"
        assert r["explanation_de"].strip(), f"explanation empty: {r}"
        assert len(r["explanation_de"]) <= 400, f"more than one or two sentences: {r}"
        for text in (r["label_de"], r["explanation_de"]):
            assert not re.search(r"[{}]", text), f"placeholder in a text: {r}"
            assert text == text.strip() and "  " not in text, r
        if r["kind"] == "rejection":
            assert "*" not in r["rule_key"], f"rejection rules are exact keys: {r}"
            assert r["source_family"] in families | {""}, r
        else:
            assert r["source_family"] == "", f"only rejections have a source family: {r}"
    assert len(reference.rule_texts()) == len(rows)


def test_every_rejection_rule_the_code_emits_has_a_text(emitted):
    missing = sorted(
        f"{family}: {key} (from {', '.join(sorted(mods))})"
        for (family, key), mods in emitted.items()
        if reference.rule_text(key, "rejection", family) is None
    )
    assert not missing, f"rule keys without a row in seeds/rule_texts.csv: {missing}"


def test_the_collector_finds_every_way_a_rule_is_emitted(emitted):
    """One key per mechanism, so a blind spot of the collector shows up here and not as a silent gap."""
    expected = {
        ("climate", "end_of_record"),  # dwd: check() -> reject() -> Rejection, forwarded twice
        ("climate", "duplicate_date"),  # dwd: reject() called directly
        ("climate", "heat_le_area"),  # climate: the err() helper
        ("climate", "dwd_archive_station"),  # FileResult.fail with a positional rule
        ("forecasts", "required"),  # reader: the err() helper
        ("forecasts", "type"),  # ParseError's default rule
        ("forecasts", "header_mismatch"),  # FileFailure, re-raised as result.fail(rule=exc.rule)
        ("forecasts", "known_status"),  # validation: Rule dataclass -> Failure -> Rejection
        ("surfaces", "file_unreadable"),  # FileResult.fail's default rule
        ("surfaces", "sewer_connection_known"),  # SQL: '<rule>' in a union-all part
        ("trees", "tree_number_missing"),  # SQL: '<rule>' as rule
        ("trees", "planting_year_not_numeric"),  # SQL built from _NUMBER_RULES in an f-string
        ("trees", "crs_unsupported"),  # FileProblem
        ("funding", "negative_amount"),  # SQL case of _error_expr
        ("funding_db", "unknown_owner_type"),  # database channel, same validation
        ("funding", "delta_sequence_gap"),  # FileResult.block
    }
    assert expected <= set(emitted), expected - set(emitted)
    # The demo plants mistakes and names the rule that must catch each (its tests hold the readers to it).
    from zi_warehouse.demo import forecast_workbooks as demo

    planted = set(demo.REJECTING.values()) | set(demo.FILE_FAILURES.values())
    assert planted <= {key for family, key in emitted if family == "forecasts"}


def test_every_sql_text_that_computes_a_rule_is_read():
    """A new query with a rule column fails here until _sql_sources reads its keys."""
    from zi_warehouse.sources import funding

    funding_sql = _funding_sql_rules()
    assert _sql_texts_with_a_rule_column() == set(_rejection_queries()) | set(funding_sql)
    # funding: every rule the SQL can give has a message (the dynamic site enumerates them by that dict)
    assert set(next(iter(funding_sql.values()))) <= set(funding._RULE_MESSAGES)


def test_every_quality_check_has_a_text():
    from zi_warehouse.quality import freshness, reconciliations, suites

    # The suite check-name format, confirmed on a real validation of one small suite.
    spec = next(s for s in suites.suites() if s.mart == "dim_measure_type")
    columns = sorted({c for e in spec.expectations for c in e.example_columns} | set(spec.key))
    frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    frame[suites.ROW_KEY] = range(0)
    assert {r.check_name for r in suites.validate_frame(spec, frame)} == {
        f"{spec.mart}.{e.name}" for e in spec.expectations
    }
    # Reconciliations and freshness name their results with literals: they must be the catalogue's names.
    for module, prefix, catalogue in (
        (reconciliations, "reconciliation.", reconciliations.CATALOGUE),
        (freshness, "freshness.", freshness.CATALOGUE),
    ):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        pattern = re.escape(prefix) + r"\w+"
        literals = {n.value for n in ast.walk(tree) if _const_str(n) and re.fullmatch(pattern, n.value)}
        assert literals == {prefix + name for name in catalogue}
    names = quality_check_names()
    assert len(names) > 150
    missing = sorted(n for n in names if reference.rule_text(n, "quality_check") is None)
    assert not missing, f"check names without a row in seeds/rule_texts.csv: {missing}"


def test_every_asset_check_has_a_text():
    names = asset_check_names()
    assert len(names) > 200
    missing = sorted(n for n in names if reference.rule_text(n, "asset_check") is None)
    assert not missing, f"Dagster asset checks without a row in seeds/rule_texts.csv: {missing}"


def test_a_generated_name_matches_one_pattern_unambiguously():
    for kind, names in (("quality_check", quality_check_names()), ("asset_check", asset_check_names())):
        patterns = [r for r in reference.rule_texts() if r.kind == kind and r.is_pattern]
        for name in names:
            if any(r.rule_key == name for r in reference.rule_texts() if r.kind == kind):
                continue
            sizes = sorted(
                (len(r.rule_key.replace("*", "")) for r in patterns if fnmatch.fnmatchcase(name, r.rule_key)),
                reverse=True,
            )
            assert sizes and (len(sizes) == 1 or sizes[0] > sizes[1]), f"{name}: patterns tie"


def test_no_row_is_stale(emitted):
    """Every row belongs to a key the code still emits (a renamed rule must take its text along)."""
    checks = {"quality_check": quality_check_names(), "asset_check": asset_check_names()}
    stale = []
    for r in reference.rule_texts():
        if r.kind == "rejection":
            used = any(
                key == r.rule_key and (r.source_family is None or family == r.source_family) for family, key in emitted
            )
        elif r.is_pattern:
            used = any(fnmatch.fnmatchcase(n, r.rule_key) for n in checks[r.kind])
        else:
            used = r.rule_key in checks[r.kind]
        if not used:
            stale.append((r.kind, r.source_family, r.rule_key))
    assert not stale, stale


def test_texts_for_people_name_no_internal_rule_key(emitted):
    keys = {key for _, key in emitted} | quality_check_names() | asset_check_names()
    for r in reference.rule_texts():
        if r.audience == "data_team":
            continue  # the data team works with the keys
        for text in (r.label_de, r.explanation_de):
            words = set(re.findall(r"[\w.]+", text))
            assert not words & keys, f"{r.rule_key}: internal key in a text for people: {words & keys}"


def test_rule_text_prefers_the_family_row_and_the_most_specific_pattern():
    general = reference.rule_text("file_unreadable", "rejection", "forecasts")
    climate = reference.rule_text("file_unreadable", "rejection", "climate")
    assert general.source_family is None and climate.source_family == "climate"
    assert general.audience == "coordinator" and climate.audience == "data_team"
    assert reference.rule_text("duplicate_project_id").label_de == "Projekt-ID doppelt"
    assert reference.rule_text("mart_budget_year.paid_eur_non_negative", "quality_check").rule_key == "*.*_non_negative"
    assert reference.rule_text("unique_combination_mart_x_a__b", "asset_check").rule_key == "unique_combination_*"
    assert reference.rule_text("unique_mart_x_a", "asset_check").rule_key == "unique_*"
    assert reference.rule_text("no_such_rule") is None
    assert reference.rule_text("*.*_non_negative") is None  # patterns never answer for rejections
    with pytest.raises(ValueError):
        reference.rule_text("required", "feedback")
