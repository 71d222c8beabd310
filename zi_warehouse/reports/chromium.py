"""Headless Chromium for reports: print HTML to PDF, read the rendered page, take a screenshot.

Debian's ``chromium`` package (``scripts/install-system-packages.sh`` installs it). Started with the
flags that keep it off the network (the machines have none), in a fresh profile each time.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

OFFLINE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing is fetched from anywhere: a report must be self-contained
)


class ChromiumMissing(RuntimeError):
    pass


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise ChromiumMissing("Chromium fehlt: scripts/install-system-packages.sh installiert es (Paket chromium).")


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="zi-chromium-") as profile:
        cmd = [chromium_binary(), *OFFLINE_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)


def print_pdf(html_path: Path, pdf_path: Path, timeout_s: float = 120) -> Path:
    """Render ``html_path`` and print it to ``pdf_path`` (A4, no browser header or footer)."""
    result = _run(["--no-pdf-header-footer", f"--print-to-pdf={pdf_path}", Path(html_path).resolve().as_uri()], timeout_s)
    if not pdf_path.exists() or pdf_path.stat().st_size == 0:
        raise RuntimeError(f"PDF konnte nicht erzeugt werden: {result.stderr[-2000:]}")
    return pdf_path


def rendered_dom(html_path: Path, timeout_s: float = 120) -> str:
    """The page's DOM after scripts ran, as Chromium sees it (for tests that check what a person sees)."""
    result = _run(["--virtual-time-budget=5000", "--dump-dom", Path(html_path).resolve().as_uri()], timeout_s)
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(f"Chromium konnte die Seite nicht darstellen: {result.stderr[-2000:]}")
    return result.stdout


def screenshot(html_path: Path, png_path: Path, width: int = 1280, height: int = 2000, timeout_s: float = 120) -> Path:
    _run([f"--window-size={width},{height}", f"--screenshot={png_path}", Path(html_path).resolve().as_uri()], timeout_s)
    if not png_path.exists():
        raise RuntimeError("Bildschirmfoto konnte nicht erzeugt werden")
    return png_path
