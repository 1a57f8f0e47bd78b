"""What the browser tests share: how Chromium is started, the viewports, and the axe-core check."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
AXE_SCRIPT = Path(__file__).resolve().parents[2] / "ui" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def launch_chromium(pw: Playwright) -> Browser:
    """The system's Chromium (never a downloaded one)."""
    return pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)


def check_axe(page: Page, state: str) -> None:
    """axe-core finds no accessibility violation in the page as it is now."""
    assert AXE_SCRIPT.is_file(), f"{AXE_SCRIPT} is missing: run `npm --prefix ui ci`"
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE_SCRIPT))
    violations = page.evaluate(
        """async () => {
            const result = await window.axe.run(document);
            return result.violations.map((v) => ({
                id: v.id,
                impact: v.impact,
                help: v.help,
                nodes: v.nodes.slice(0, 5).map((node) => node.target.join(' ')),
            }));
        }"""
    )
    assert violations == [], f"axe found violations in the {state} state:\n" + json.dumps(violations, indent=2)
