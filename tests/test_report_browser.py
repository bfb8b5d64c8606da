"""The comparison report's index.html in a real headless Chromium: the page loads, every image
resolves (naturalWidth > 0) and the console stays free of errors.

Chromium (Debian's ``chromium`` package, ``make chromium`` installs it) is driven over the
DevTools protocol with a small standard-library WebSocket client below: no browser-automation
package is needed. Skipped, with a message, when no Chromium is installed; ``PYMOTOR_CHROMIUM``
names another binary.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from test_compare import write_run


def _chromium() -> str | None:
    env = os.environ.get("PYMOTOR_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium: install Debian's chromium (`make chromium`, or "
                             "`apt-get install chromium`) or set PYMOTOR_CHROMIUM to run the browser check")


# ---- a minimal WebSocket client (RFC 6455, text frames) and DevTools session ---------------------
class _WebSocket:
    def __init__(self, url: str, timeout: float):
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            head += chunk
        head, self._buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def send(self, text: str, opcode: int = 1) -> None:
        data = text.encode()
        n = len(data)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self) -> str:
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode == 9:  # ping
                self.send(payload.decode(errors="replace"), opcode=10)
                continue
            if opcode in (0, 1, 2):
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """One page of a headless Chromium, with the console errors it reports."""

    def __init__(self, binary: str, workdir: Path, timeout: float = 60.0):
        self.timeout = timeout
        profile = workdir / "chromium-profile"
        profile.mkdir()
        self.log = open(workdir / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-quic", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--allow-file-access-from-files", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"], stdout=self.log, stderr=subprocess.STDOUT)
        self.ws = None
        try:
            port = self._port(profile / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            assert pages, "Chromium has no page target"
            self.ws = _WebSocket(pages[0]["webSocketDebuggerUrl"], timeout)
            self._id = 0
            self.events = []
            for domain in ("Runtime", "Log", "Page"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _port(self, path: Path) -> int:
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Chromium exited with status {self.proc.returncode}; see {self.log.name}")
            try:
                first = path.read_text().splitlines()[0]
                if first.strip():
                    return int(first)
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.05)
        raise TimeoutError(f"Chromium wrote no DevToolsActivePort within {self.timeout} s")

    def call(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str):
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            for k, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(k)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} within {self.timeout} s")

    def open(self, path: Path) -> dict:
        """Load ``path``; returns its title, headings and images once every image has loaded."""
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        res = self.call("Runtime.evaluate", awaitPromise=True, returnByValue=True, expression="""
            Promise.all(Array.from(document.images).map(i => i.complete ? null :
                new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })))
            .then(() => ({
                title: document.title,
                h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
                warningBox: (document.getElementById('warnings') || {}).className || null,
                images: Array.from(document.images).map(i => ({src: i.getAttribute('src'),
                    width: i.naturalWidth, height: i.naturalHeight, complete: i.complete}))}))""")
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        self.call("Runtime.evaluate", expression="1")  # let late console events arrive
        return res["result"]["value"]

    def console_errors(self) -> list:
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                                   for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description", d.get("text"))))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
        return out

    def close(self):
        if self.ws is not None:
            try:
                self.ws.send(json.dumps({"id": 0, "method": "Browser.close"}))
            except OSError:
                pass
            self.ws.close()
            self.ws = None
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = DevTools(CHROMIUM, tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()


def test_report_loads_in_chromium_with_every_image_and_no_console_error(browser, tmp_path):
    import pymotor
    import pymotor.compare  # noqa: F401

    ref = write_run(tmp_path / "xtb.h5", 600, seed=1)
    cand = write_run(tmp_path / "nn.h5", 560, seed=2, scale=1.03)
    report = pymotor.compare(ref, cand, windows_steps=(100, 250),
                             test_metrics={"energy": {"mae": 0.8, "mae_se": 0.02},
                                           "forces": {"mae": 1.0, "mae_se": 0.01}, "n_frames": 50})
    index = report.write(tmp_path / "report")
    page = browser.open(index)
    assert page["title"] == "pymotor compare: NN vs xTB"
    assert page["h2"][1:] == ["Headline", "Figures", "Details"]  # the warning box's heading comes first
    assert page["warningBox"] == "warnings"  # the shorter NN run is reported at the top
    names = sorted(img["src"] for img in page["images"])
    assert names == sorted(f"{n}.png" for n in report.figures) and len(names) == 7
    for img in page["images"]:
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    assert browser.console_errors() == []


def test_the_browser_check_sees_a_broken_page(browser, tmp_path):
    """The harness is not blind: a missing image and a console error are both caught."""
    (tmp_path / "broken.html").write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
        "<title>broken</title></head><body><h2>x</h2><img src='missing.png' alt='missing'>"
        "<script>console.error('planted error')</script></body></html>")
    page = browser.open(tmp_path / "broken.html")
    assert page["images"] == [{"src": "missing.png", "width": 0, "height": 0, "complete": True}]
    errors = browser.console_errors()
    assert any("planted error" in e for e in errors), errors
    assert any("missing.png" in e for e in errors), errors  # the failed load is logged too
