"""Headless Chromium for the page tests: render a page, read its DOM, decode its screenshots.

Chromium is Debian's package (.ci/run installs it). It runs on the real clock (``real_clock_env``): it hangs
under libfaketime, and the page it loads was made by the exporter on whatever clock the test gave it.
"""

from __future__ import annotations

import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

from tests.helpers.tools import need_tool, real_clock_env

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    binary = need_tool("chromium")
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    res = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                         capture_output=True, timeout=90, env=real_clock_env())
    assert res.returncode == 0, res.stderr.decode(errors="replace")[-2000:]
    return res


class _Text(HTMLParser):
    """Text per element id, plus every link target: what a reader of the rendered page gets."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.tone: dict[str, str] = {}  # element id -> its class: the tone the page colours it with
        self.links: list[str] = []
        self.scripts = 0
        self._open: list[str | None] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "script":
            self.scripts += 1
        if attrs.get("id"):
            self.tone[attrs["id"]] = attrs.get("class") or ""
        if tag not in ("br", "meta", "img", "link", "hr", "input"):
            self._open.append(attrs.get("id"))

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        self.text.append(data)
        for key in self._open:
            if key:
                self.by_id[key] = self.by_id.get(key, "") + data


def rendered(tmp_path: Path, url: str) -> _Text:
    dom = chromium(tmp_path, url, "--dump-dom").stdout.decode("utf-8")
    parser = _Text()
    parser.feed(dom)
    return parser


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) into RGB pixels."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour_type in (2, 6) and interlace == 0, (depth, colour_type, interlace)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    bpp = 4 if colour_type == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    pixels = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        pixels.extend(tuple(line[x:x + 3]) for x in range(0, stride, bpp))
        prev = line
    return width, height, pixels
