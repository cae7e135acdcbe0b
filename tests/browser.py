"""A minimal W3C WebDriver client (standard library only) for Debian's chromium and
chromedriver: enough to log in, click and type, read the page and take screenshots."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,1000",
]


def chromium_available() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


# WebDriver's codes for the keys a reviewer presses
KEYS = {
    "Tab": "\ue004",
    "Enter": "\ue006",  # WebDriver's Return: code "Enter" (\ue007 is the keypad's)
    "Shift": "\ue008",
    "Control": "\ue009",
    "Escape": "\ue00c",
    "Space": "\ue00d",
    "ArrowUp": "\ue013",
    "ArrowDown": "\ue015",
    "Backspace": "\ue003",
}


class Browser:
    def __init__(self, profile: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.driver = subprocess.Popen(
            ["chromedriver", f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 20
        while True:
            try:
                self._raw("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": shutil.which("chromium"),
                        "args": [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"],
                    },
                }
            }
        }
        self.session = self._raw("POST", "/session", caps)["value"]["sessionId"]

    def _raw(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def cmd(self, method: str, path: str, body: Any = None) -> Any:
        return self._raw(method, f"/session/{self.session}{path}", body)["value"]

    def go(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def find_all(self, css: str) -> list[str]:
        found = self.cmd("POST", "/elements", {"using": "css selector", "value": css})
        return [e[ELEMENT] for e in found]

    def wait(self, css: str, timeout: float = 30) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = self.find_all(css)
            if found:
                return found[0]
            time.sleep(0.2)
        raise TimeoutError(f"no element {css!r} after {timeout}s")

    def wait_text(self, text: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.text():
                return
            time.sleep(0.2)
        raise TimeoutError(f"text {text!r} not on the page after {timeout}s")

    def click(self, element: str) -> None:
        self.cmd("POST", f"/element/{element}/click", {})

    def click_text(self, css: str, text: str, timeout: float = 30) -> None:
        """Click the first element matching css whose visible text contains text
        (ignoring case: CSS may upper-case it)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for element in self.find_all(css):
                try:
                    if text.lower() in self.cmd("GET", f"/element/{element}/text").lower():
                        self.click(element)
                        return
                except urllib.error.HTTPError:
                    continue  # stale element: the page re-rendered
            time.sleep(0.2)
        raise TimeoutError(f"no {css!r} with text {text!r}")

    def type(self, element: str, text: str) -> None:
        self.cmd("POST", f"/element/{element}/value", {"text": text})

    def keys(self, *strokes: str) -> None:
        """Press keys on whatever has the focus, as a person would: each stroke is a
        character, a key name of ``KEYS`` ("Tab", "Enter", "Escape", "ArrowDown"), or
        modifiers joined with "+" ("Control+Enter", "Shift+Enter")."""
        actions: list[dict[str, str]] = []
        for stroke in strokes:
            *mods, key = stroke.split("+") if len(stroke) > 1 else [stroke]
            codes = [KEYS[m] for m in mods]
            code = KEYS.get(key, key)
            actions += [{"type": "keyDown", "value": c} for c in codes]
            actions += [{"type": "keyDown", "value": code}, {"type": "keyUp", "value": code}]
            actions += [{"type": "keyUp", "value": c} for c in reversed(codes)]
        self.cmd("POST", "/actions", {"actions": [{"type": "key", "id": "kb", "actions": actions}]})
        self.cmd("DELETE", "/actions")

    def write(self, text: str) -> None:
        """Type ``text`` on whatever has the focus."""
        self.keys(*text)

    def text(self) -> str:
        body = self.find_all("body")
        return str(self.cmd("GET", f"/element/{body[0]}/text")) if body else ""

    def script(self, source: str, *args: Any) -> Any:
        return self.cmd("POST", "/execute/sync", {"script": source, "args": list(args)})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))
        return path

    def close(self) -> None:
        try:
            self._raw("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            self.driver.wait(10)
