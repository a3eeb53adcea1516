"""Headless Chromium driven over the DevTools protocol (a websocket: aiohttp's client), for
tests that watch a page live: it polls, changes, goes stale. (Static pages: --dump-dom.)"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .services import free_port

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1600,1000", "--hide-scrollbars",
]  # fmt: skip


class Browser:
    def __init__(self, workdir: Path) -> None:
        assert CHROMIUM is not None
        self.port = free_port()
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={workdir / 'chromium'}",
             f"--remote-debugging-port={self.port}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.session: aiohttp.ClientSession | None = None
        self.ws: Any = None
        self.seq = 0

    async def __aenter__(self) -> Browser:
        try:
            return await self._connect()
        except BaseException:
            await self.__aexit__()  # no chromium left behind by a failed start
            raise

    async def _connect(self) -> Browser:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list") as r:
                    pages = [t for t in orjson.loads(r.read()) if t["type"] == "page"]
                if pages:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "chromium did not start"
            await asyncio.sleep(0.2)
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.enable")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.seq += 1
        await self.ws.send_str(orjson.dumps({"id": self.seq, "method": method,
                                             "params": params}).decode())  # fmt: skip
        while True:  # CDP speaks text frames; events in between are skipped
            frame = await self.ws.receive()
            assert frame.type == aiohttp.WSMsgType.TEXT, frame
            msg = orjson.loads(frame.data)
            if msg.get("id") == self.seq:
                assert "error" not in msg, msg
                return dict(msg["result"])

    async def navigate(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def eval(self, expression: str) -> Any:
        r = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                            awaitPromise=True)  # fmt: skip
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    async def wait(self, expression: str, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            r = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
            value = None if "exceptionDetails" in r else r["result"].get("value")  # loading
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.3)

    async def screen(self, width: int, height: int) -> None:
        """The page as a screen of ``width`` x ``height`` CSS pixels shows it."""
        await self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=1, mobile=False)  # fmt: skip

    async def screenshot(self, path: Path) -> None:
        r = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(r["data"]))
