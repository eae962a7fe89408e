"""The Dagster UI in a real browser (Debian's headless Chromium and its driver), on the instance where the terminal
recorded a finished run and a run held by a failed check: an operator finds the assets on the graph, the run's
success, and the failing check's name and summary."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dagster_services import Webserver
from tests.support import add_debtor, add_template, add_user, write_settings
from userdebtor_pipeline.runner import run_sync

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_TIMEOUT = 90
HELD_ASSET, HELD_CHECK = "new_debtors_vetted", "template_customer_exists"
SCREENSHOTS = os.environ.get("USERDEBTOR_TEST_SCREENSHOTS")  # a folder to keep each page's screenshot in


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them: "
                    "apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path))
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1600,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=str(CHROMEDRIVER),
                                                                     log_output=str(tmp_path / "chromedriver.log")))
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _page_shows(driver, url: str, *texts: str, name: str) -> str:
    """Open `url` and wait until the rendered page shows every text; the page's text for further checks."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    try:
        WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.5).until(
            lambda d: all(text in d.find_element("tag name", "body").text for text in texts))
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        missing = [text for text in texts if text not in body]
        pytest.fail(f"{url} never showed {missing}; it shows:\n{body[:3000]}")
    finally:
        if SCREENSHOTS:
            driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))
    return driver.find_element("tag name", "body").text


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_operator_finds_assets_runs_and_failed_checks_in_the_browser(browser, pipeline_env, settings_path,
                                                                       tmp_path: Path) -> None:
    add_template(pipeline_env.erp)
    add_debtor(pipeline_env.erp, "C100", "browser@mail.example", name="Browser Run")
    finished = run_sync()
    assert finished.success, (finished.failed_checks, finished.errors)
    write_settings(settings_path, user_debtor={"template_customer": "NO_SUCH_TEMPLATE"})
    add_user(pipeline_env.web, "waits@mail.example")
    held = run_sync()
    assert f"{HELD_ASSET}:{HELD_CHECK}" in held.failed_checks
    summary = held.check_metadata[f"{HELD_ASSET}:{HELD_CHECK}"]["summary"]

    # The UI on the same DAGSTER_HOME as the terminal's runs (pipeline_env set it, and the URLs and settings).
    server = Webserver(["-m", "userdebtor_pipeline.definitions"], dict(os.environ), tmp_path,
                       tmp_path / "webserver.log")
    try:
        server.wait_until_up()
        server.wait_for_locations({"userdebtor_pipeline.definitions"}, server)

        graph = _page_shows(browser, f"{server.url}/asset-groups", "staged_erp_debtors", "user_debtor_plan",
                            HELD_ASSET, name="asset-graph")
        assert "web_users_created" in graph

        _page_shows(browser, f"{server.url}/runs/{finished.run_id}", "Success", finished.run_id[:8],
                    name="finished-run")

        _page_shows(browser, f"{server.url}/assets/{HELD_ASSET}?view=checks", HELD_CHECK, "Failed",
                    summary[:60], name="failed-check")
    finally:
        server.stop()
