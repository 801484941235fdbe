"""The leaderboard in a real browser: `kdbench leaderboard` on a free loopback port, driven by
headless Chromium (Debian's /usr/bin/chromium through Playwright; no browser download).

Leaves a screenshot in test-artifacts/leaderboard.png (git-ignored) for people to look at.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from support import REPO, make_record, standard_results, write

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
# No network on the test machines: without the background-networking flags Chromium floods the
# log with refused connections to Google services.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
HTML_NAME = "<img src=x onerror=alert(1)>"

if not Path(CHROMIUM).exists():
    pytest.skip("CHROMIUM IS NOT INSTALLED: the leaderboard browser test did not run. Install "
                "it with `apt-get install -y chromium` (.ci/run does this in CI).",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed; run "
                               "`make install` (it is in the dev extra)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kdbench leaderboard exited ({proc.returncode}): "
                                 f"{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url}/_stcore/health did not answer 'ok' within {timeout} s")


@pytest.fixture
def server(record_template, tmp_path):
    results = standard_results(record_template, tmp_path / "results")
    write(results, make_record(record_template, HTML_NAME, 0))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "leaderboard", "--results-dir", str(results),
         "--port", str(port), "--host", "127.0.0.1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # its own process group: the teardown stops exactly it
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_leaderboard_renders_in_chromium(server, tmp_path):
    url, proc = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1600, "height": 1000})
        try:
            page = browser.new_page()
            alerts: list[str] = []
            page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
            page.goto(url)
            page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=60_000)
            table = page.locator('[data-testid="stDataFrame"]').first
            table.wait_for(timeout=60_000)
            # The grid draws on a canvas and mirrors its cells in an accessible DOM table.
            for name in ("teacher", "baseline", "vanilla", "robustkd", HTML_NAME):
                sync_api.expect(table.get_by_text(name, exact=True)).to_have_count(1)
            # The DOM mirror holds cell values (the canvas draws the text): vanilla's clean % (after
            # rank, rank range, method and family) is the mean over its seeds 96.0, 96.5, 97.0.
            row = table.locator("tr", has=page.get_by_text("vanilla", exact=True))
            sync_api.expect(row.locator("td").nth(4)).to_have_text("96.5")
            assert page.locator("img[src='x']").count() == 0 and not alerts
            page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)
            page.get_by_role("tab", name="Trade-offs").click()
            page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "leaderboard-tradeoffs.png"), full_page=True)
        finally:
            browser.close()
    assert proc.poll() is None, "the server died while the page was open"
