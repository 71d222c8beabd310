"""docs/domain.md is the one domain reference: every pointer into it lands on a section, and nothing in the
repository points to a domain document outside it (issue 15: the repository stands on its own).

Tests may read the real publisher files in ``../shared/real-data`` (data, not a reference) and docs may say
where those files live; nothing else may name a path outside the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOMAIN_DOC = REPO / "docs" / "domain.md"
#: Folders that are not the project's own text (environments, build output, data, the Dagster home).
TEXT_SUFFIXES = {".py", ".sql", ".yml", ".yaml", ".md", ".csv", ".toml", ".txt", ".cfg", ".sh"}
# Built from parts so this file does not match itself.
OLD_DOC = "DOMAIN" + ".md"
OUTSIDE = re.compile(r"(\.\./shared|/work" + r"/shared|shared/(domain|seed))(/[\w./-]*)?")


def _repo_text_files() -> list[Path]:
    """The repository's text files as a commit takes them: tracked, or new and not ignored (not the data, the
    virtual environment or the bench's cached landing areas)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    paths = (REPO / name for name in listed.split("\0") if name)
    return [p for p in paths if (p.suffix in TEXT_SUFFIXES or p.name == "Makefile") and p.is_file()]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def domain_anchors() -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", DOMAIN_DOC.read_text(encoding="utf-8"), re.M)}


def test_every_pointer_into_the_domain_doc_lands_on_a_section():
    anchors = domain_anchors()
    assert {
        "kpis",
        "water-balance",
        "worked-values",
        "funding-rates",
        "programme-figures",
        "municipalities",
        "dwd-daily-files",
    } <= anchors
    pointers = 0
    broken = []
    for path in _repo_text_files():
        for m in re.finditer(r"domain\.md#([\w-]+)", path.read_text(encoding="utf-8", errors="replace")):
            pointers += 1
            if m.group(1) not in anchors:
                broken.append(f"{path.relative_to(REPO)}: #{m.group(1)}")
    assert not broken, broken
    assert pointers >= 30  # the code's comments point here (issue 15 item 6)


def test_nothing_points_to_a_domain_document_outside_the_repository():
    found = []
    for path in _repo_text_files():
        rel = path.relative_to(REPO)
        text = path.read_text(encoding="utf-8", errors="replace")
        if OLD_DOC in text:
            found.append(f"{rel}: {OLD_DOC}")
        for m in OUTSIDE.finditer(text):
            real_data = (m.group(3) or "").startswith("/real-data")
            if real_data and rel.parts[0] in ("tests", "docs"):
                continue  # real publisher files: read by tests, located by the docs
            found.append(f"{rel}: {m.group(0)}")
    assert not found, found


def test_readme_and_architecture_link_the_domain_doc():
    assert "docs/domain.md" in (REPO / "README.md").read_text(encoding="utf-8")
    assert "(domain.md)" in (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
