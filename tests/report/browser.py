"""Headless Chromium for report tests: render a page to a screenshot and collect what its
scripts logged to the console."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CONSOLE = re.compile(r":CONSOLE[^\]]*\] \"(?P<message>.*)\", source: ")


@dataclass(frozen=True)
class Rendered:
    """A page as Chromium rendered it."""

    screenshot: Path
    console: list[str]
    dom: str

    @property
    def js_errors(self) -> list[str]:
        """Console messages that report script errors."""
        return [m for m in self.console if re.search(r"Uncaught|Error", m)]


def chromium() -> str:
    """The Chromium binary; skipped when missing unless ``MIXPREC_REQUIRE_BROWSER`` is set
    (``.ci/run`` installs it and sets it, so CI cannot skip)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("MIXPREC_REQUIRE_BROWSER"):
            pytest.fail("MIXPREC_REQUIRE_BROWSER is set but chromium is not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def render(page: Path, screenshot: Path, size: tuple[int, int] = (1200, 2400)) -> Rendered:
    """Load ``page`` in headless Chromium: its screenshot, console messages and final DOM."""
    binary = chromium()
    common = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--enable-logging=stderr", "--v=0", f"--window-size={size[0]},{size[1]}",
              "--virtual-time-budget=5000"]
    url = page.resolve().as_uri()
    shot = subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True,
                          text=True, timeout=120)
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    console = [m["message"] for m in CONSOLE.finditer(shot.stderr + dom.stderr)]
    return Rendered(screenshot, console, dom.stdout)


def ink_fraction(png: Path) -> float:
    """Fraction of pixels that are not (near) white."""
    from PIL import Image

    histogram = Image.open(png).convert("L").histogram()
    return sum(histogram[:240]) / sum(histogram)
