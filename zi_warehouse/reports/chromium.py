"""Headless Chromium for reports: print HTML to PDF, read the rendered page, take a screenshot.

Debian's ``chromium`` package (``scripts/install-system-packages.sh`` installs it). Started with the
flags that keep it off the network (the machines have none), in a fresh profile each time.

PDF printing goes through :class:`Browser`: one Chromium process driven over the DevTools protocol on a
pipe (``--remote-debugging-pipe``, no port is opened). It can be started *before* the page exists, so its
start-up (about a second) runs while the caller still draws charts, and it can print several pages with one
launch. ``Page.printToPDF`` gets the options ``--print-to-pdf --no-pdf-header-footer`` uses (A4 from the
page's CSS ``@page``, backgrounds, no header or footer), so the PDF is the same. ``Browser.evaluate`` lays a
page out for print or screen in a window of a given width and returns what a script measures there (the
tests check with it that nothing is wider than the printed page).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, check=False, env=chromium_environment()
        )


#: A Unix socket's path holds at most 107 bytes; Chromium puts its singleton socket into the temporary folder as
#: ``org.chromium.Chromium.XXXXXX/SingletonSocket`` (44 bytes) and stops with "Socket path too long" beyond that.
SOCKET_PATH_MAX = 107
SINGLETON_SOCKET_SUFFIX = "/org.chromium.Chromium.XXXXXX/SingletonSocket"


def chromium_environment() -> dict[str, str]:
    """Chromium's environment: this one, with the temporary folder ``/tmp`` when the configured one (``TMPDIR``,
    e.g. a test's or a service's folder) is too long a path for Chromium's singleton socket."""
    env = dict(os.environ)
    if len(tempfile.gettempdir().encode() + SINGLETON_SOCKET_SUFFIX.encode()) > SOCKET_PATH_MAX:
        env["TMPDIR"] = "/tmp"
    return env


#: What ``--print-to-pdf --no-pdf-header-footer`` asks of Chromium, as DevTools ``Page.printToPDF`` options.
PDF_OPTIONS = {"printBackground": True, "preferCSSPageSize": True, "displayHeaderFooter": False}


class Browser:
    """One headless Chromium, driven over the DevTools protocol on a pipe; ``start()`` returns at once.

    Use as a context manager (or call ``close()``); ``print_pdf`` may be called several times.
    """

    def __init__(self, timeout_s: float = 120) -> None:
        self.timeout_s = timeout_s
        self._tmp = tempfile.mkdtemp(prefix="zi-chromium-")
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None
        self._warm: threading.Thread | None = None

    def start(self) -> Browser:
        try:
            binary = chromium_binary()
        except ChromiumMissing:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        # Chromium reads commands from fd 3 and writes replies to fd 4. The pipe ends are moved to fds >= 10 and
        # bash (dash handles only one-digit fds) puts them on 3 and 4 before exec'ing Chromium.
        cmd_read, cmd_write = os.pipe()
        reply_read, reply_write = os.pipe()
        child_in = fcntl.fcntl(cmd_read, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(reply_write, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_read)
        os.close(reply_write)
        args = [
            binary,
            *OFFLINE_FLAGS,
            f"--user-data-dir={self._tmp}/profile",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self._stderr = open(Path(self._tmp) / "stderr.log", "wb")  # noqa: SIM115 - closed in close()
        try:
            self._proc = subprocess.Popen(
                ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&-', *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                pass_fds=(child_in, child_out),
                env=chromium_environment(),
            )
        finally:
            os.close(child_in)
            os.close(child_out)
        self._write = os.fdopen(cmd_write, "wb", buffering=0)
        self._read_fd = reply_read
        # Open the page and print an empty one in the background: the first print of a browser starts its
        # renderer and PDF services (about half a second), which then overlaps with the caller's own work.
        self._warm_error: BaseException | None = None
        self._warm = threading.Thread(target=self._warm_up, name="zi-chromium-warm-up", daemon=True)
        self._warm.start()
        return self

    def _warm_up(self) -> None:
        try:
            session = self._page()
            self._send("Page.printToPDF", PDF_OPTIONS, session=session)
        except BaseException as exc:  # noqa: BLE001 - reported by the first real call
            self._warm_error = exc

    def _ready(self) -> None:
        if self._warm is not None:
            self._warm.join()
            self._warm = None
            if self._warm_error is not None:
                raise RuntimeError(f"Chromium startet nicht: {self._warm_error}") from self._warm_error

    def __enter__(self) -> Browser:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- protocol ---------------------------------------------------------------------------------------
    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"Chromium antwortet nicht (Zeitlimit {self.timeout_s:g} s): {self._stderr_tail()}")
            ready, _, _ = select.select([self._read_fd], [], [], remaining)
            if ready:
                chunk = os.read(self._read_fd, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium wurde beendet: {self._stderr_tail()}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _send(
        self, method: str, params: dict | None = None, session: str | None = None, wait_for: str | None = None
    ) -> dict:
        """Send one command and return its result; with ``wait_for``, also wait for that event afterwards."""
        self._next_id += 1
        request = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        try:
            self._write.write(json.dumps(request).encode() + b"\0")
        except BrokenPipeError:
            raise RuntimeError(f"Chromium wurde beendet: {self._stderr_tail()}") from None
        deadline = time.monotonic() + self.timeout_s
        result, event_seen = None, wait_for is None
        while result is None or not event_seen:
            message = self._message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"Chromium: {method} fehlgeschlagen: {message['error']}")
                result = message.get("result", {})
            elif message.get("method") == "Inspector.targetCrashed":
                raise RuntimeError("Chromium: die Seite ist abgestürzt")
            elif wait_for and message.get("method") == wait_for and result is not None:
                event_seen = True
        return result

    def _page(self) -> str:
        if self._session is None:
            target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            self._send("Page.enable", session=self._session)
        return self._session

    def _stderr_tail(self) -> str:
        try:
            return (Path(self._tmp) / "stderr.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # --- what callers use -------------------------------------------------------------------------------
    def print_pdf(self, html_path: Path, pdf_path: Path) -> Path:
        """Load ``html_path`` (after its load event) and print it to ``pdf_path`` (A4, no header or footer)."""
        if self._proc is None:
            self.start()
        self._ready()
        session = self._page()
        self._send(
            "Page.navigate",
            {"url": Path(html_path).resolve().as_uri()},
            session=session,
            wait_for="Page.loadEventFired",
        )
        data = base64.b64decode(self._send("Page.printToPDF", PDF_OPTIONS, session=session)["data"])
        if not data:
            raise RuntimeError(f"PDF konnte nicht erzeugt werden: {self._stderr_tail()}")
        Path(pdf_path).write_bytes(data)
        return Path(pdf_path)

    def evaluate(
        self, html_path: Path, expression: str, *, width_px: int, height_px: int = 1000, media: str = "screen"
    ) -> Any:
        """Load ``html_path`` in a ``width_px`` wide window, laid out for ``media`` ("screen" or "print"), and
        return the JSON value of the JavaScript ``expression`` (for checks of what a reader sees).

        With ``media="print"`` and the width of the page's printable area the layout is the one
        ``print_pdf`` paginates: an element wider than that window is wider than the printed page.
        """
        if self._proc is None:
            self.start()
        self._ready()
        session = self._page()
        self._send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width_px, "height": height_px, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        self._send("Emulation.setEmulatedMedia", {"media": media}, session=session)
        # A printed page has no scrollbar; a browser window on screen has one.
        self._send("Emulation.setScrollbarsHidden", {"hidden": media == "print"}, session=session)
        try:
            self._send(
                "Page.navigate",
                {"url": Path(html_path).resolve().as_uri()},
                session=session,
                wait_for="Page.loadEventFired",
            )
            result = self._send(
                "Runtime.evaluate",
                {"expression": expression, "returnByValue": True, "awaitPromise": True},
                session=session,
            )
        finally:  # print_pdf afterwards lays out the page as always
            self._send("Emulation.setEmulatedMedia", {"media": ""}, session=session)
            self._send("Emulation.setScrollbarsHidden", {"hidden": False}, session=session)
            self._send("Emulation.clearDeviceMetricsOverride", session=session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"Chromium: Skript fehlgeschlagen: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self, wait: bool = True) -> None:
        """Ask Chromium to quit and remove its profile; ``wait=False`` leaves the waiting to a thread."""
        if self._warm is not None:
            self._warm.join(timeout=self.timeout_s)
            self._warm = None
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                self._send("Browser.close")
            except (RuntimeError, OSError):
                pass
            self._write.close()
            os.close(self._read_fd)
        if wait or proc is None:
            self._finish(proc)
        else:
            thread = threading.Thread(target=self._finish, args=(proc,), name="zi-chromium-close")
            with _closing_guard:
                _closing.add(thread)
            thread.start()

    def _finish(self, proc: subprocess.Popen | None) -> None:
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self._stderr.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
        with _closing_guard:
            _closing.discard(threading.current_thread())


#: Threads still quitting a Chromium and removing its profile (``Browser.close(wait=False)``).
_closing: set[threading.Thread] = set()
_closing_guard = threading.Lock()


def wait_for_closing(timeout_s: float = 15) -> None:
    """Let the Chromiums being closed finish, before a process ends without Python's normal exit (``os._exit``:
    ``zi``, a run the run worker forked), which would cut the thread off and leave the profile folder in /tmp."""
    deadline = time.monotonic() + timeout_s
    with _closing_guard:
        threads = list(_closing)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def print_pdf(html_path: Path, pdf_path: Path, timeout_s: float = 120, browser: Browser | None = None) -> Path:
    """Render ``html_path`` and print it to ``pdf_path`` (A4, no browser header or footer).

    With ``browser`` (already started, e.g. while the page was still being written) that Chromium prints and
    stays open; without, one is started and closed for this page.
    """
    if browser is not None:
        return browser.print_pdf(html_path, pdf_path)
    with Browser(timeout_s) as own:
        return own.print_pdf(html_path, pdf_path)


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
