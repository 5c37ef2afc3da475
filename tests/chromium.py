"""Debian's Chromium for the tests that look at a page (.ci/run installs it, with its
chromedriver), and the screenshot reader they share."""

import os
import shutil
import struct
import zlib

import pytest


def chromium_binary() -> str:
    """Debian's Chromium (.ci/run installs it). CI must have it; elsewhere its absence skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's `chromium` package (as root, with apt-get)")
        pytest.skip("Chromium is not installed (`apt-get install chromium`): these tests open pages in it")
    return found


def png_pixels(data: bytes) -> tuple[int, int, list]:
    """Width, height and rows of (r, g, b) of an 8-bit RGB or RGBA, non-interlaced PNG, as
    Chromium writes screenshots (no imaging library needed)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and not interlace, header
    channels = 3 if color == 2 else 4
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
        previous = line
    return width, height, rows


def chromium_driver():
    """Selenium driving headless Chromium through Debian's chromedriver (chromium-driver), with no
    network beyond this machine: every host but 127.0.0.1 fails to resolve."""
    from selenium import webdriver

    binary = chromium_binary()
    driver = shutil.which("chromedriver")
    if not driver:
        if os.environ.get("CI"):
            pytest.fail("chromedriver is missing: .ci/run installs Debian's `chromium-driver` package")
        pytest.skip("chromedriver is not installed (`apt-get install chromium-driver`)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1280,1400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
