"""The landing area: files as delivered, one subfolder per source family, found and content-hashed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LandedFile:
    path: Path
    source_file: str  # relative to the landing folder (stable key across machines)
    file_hash: str  # sha256 of the bytes as delivered
    size_bytes: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_empty(landing_dir: Path) -> bool:
    """No file below ``landing_dir`` (``zi build`` writes demo data then)."""
    return not landing_dir.exists() or not any(p.is_file() for p in landing_dir.rglob("*"))


def discover(landing_dir: Path, source_family: str, suffixes: tuple[str, ...]) -> list[LandedFile]:
    """Every file below ``landing/<source_family>`` whose name ends in one of ``suffixes``, sorted.

    Hidden files and office lock files (``~$x.xlsx``) are skipped: they are not deliveries.
    """
    folder = landing_dir / source_family
    if not folder.exists():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith((".", "~$")):
            continue
        if suffixes and not path.name.lower().endswith(suffixes):
            continue
        found.append(
            LandedFile(
                path=path,
                source_file=path.relative_to(landing_dir).as_posix(),
                file_hash=file_sha256(path),
                size_bytes=path.stat().st_size,
            )
        )
    return found


def fingerprint(folder: Path, previous: dict[str, list]) -> dict[str, list]:
    """{path relative to ``folder``: [size, mtime_ns, sha256]} of every delivery below ``folder``.

    Hashes only files whose size or modification time changed since ``previous`` (the last fingerprint),
    so a watcher that looks every few seconds reads a file's bytes once, not at every look.
    """
    out = {}
    if not folder.exists():
        return out
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith((".", "~$")):
            continue
        rel = path.relative_to(folder).as_posix()
        st = path.stat()
        old = previous.get(rel)
        if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            out[rel] = old
        else:
            out[rel] = [st.st_size, st.st_mtime_ns, file_sha256(path)]
    return out


def changed_files(previous: dict[str, list], current: dict[str, list]) -> list[str]:
    """New, changed (by content hash) or removed files; a touched but unchanged file is not a change."""
    names = set(previous) | set(current)
    return sorted(n for n in names if (previous.get(n) or [None] * 3)[2] != (current.get(n) or [None] * 3)[2])
