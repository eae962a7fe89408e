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
from tests.support import a_finished_and_a_held_run
from userdebtor_pipeline.defs.domains import RUN_ORDER

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PAGE_TIMEOUT = 60
# The first group a run goes through: the run's start, the staged conversions and the conversions applied.
CONVERSION_ASSETS = ("sync_run_started", "staged_debtor_conversions", "conversion_ledger",
                     "customer_conversions_applied")
LOCATION = "userdebtor_pipeline.definitions"  # the code location of `dagster-webserver -m ...`
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
    options.binary_location = str(CHROMIUM)  # a tall window: the asset graph draws only the nodes in view
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path))
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1920,2400", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=str(CHROMEDRIVER),
                                                                     log_output=str(tmp_path / "chromedriver.log")))
    driver.set_page_load_timeout(PAGE_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _missing_on_page(driver, url: str, *texts: str, name: str, click: str | None = None) -> list[str]:
    """Open `url` (and click the element reading `click`), wait until the rendered page shows every text, and
    name those it never showed."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    try:
        if click:
            WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.5).until(
                lambda d: d.find_elements("xpath", f"//*[text()='{click}']"))[0].click()
        WebDriverWait(driver, PAGE_TIMEOUT, poll_frequency=0.5).until(
            lambda d: all(text in d.find_element("tag name", "body").text for text in texts))
    except TimeoutException:
        pass
    finally:
        if SCREENSHOTS:
            driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))
    body = driver.find_element("tag name", "body").text
    missing = [text for text in texts if text not in body]
    return [f"{url} never showed {missing}; it shows:\n{body[:1500]}"] if missing else []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_an_operator_finds_assets_runs_and_failed_checks_in_the_browser(browser, pipeline_env, settings_path,
                                                                       tmp_path: Path) -> None:
    finished, held = a_finished_and_a_held_run(pipeline_env, settings_path, "browser@mail.example", "Browser Run")
    assert f"{HELD_ASSET}:{HELD_CHECK}" in held.failed_checks
    summary = held.check_metadata[f"{HELD_ASSET}:{HELD_CHECK}"]["summary"]

    # The UI on the same DAGSTER_HOME as the terminal's runs (pipeline_env set it, and the URLs and settings).
    server = Webserver(["-m", "userdebtor_pipeline.definitions"], dict(os.environ), tmp_path,
                       tmp_path / "webserver.log")
    try:
        server.wait_until_up()
        server.wait_for_locations({LOCATION}, server)

        # The whole graph collapsed to groups: one box per domain (their left-to-right order is asserted on
        # the definitions, tests/test_definitions.py; the screenshot shows it).
        problems = _missing_on_page(browser, f"{server.url}/asset-groups", *RUN_ORDER, name="group-graph")
        # The asset graph of the first group: every asset by name, materialized by the terminal's runs.
        problems += _missing_on_page(browser, f"{server.url}/locations/{LOCATION}/asset-groups/conversions",
                                     *CONVERSION_ASSETS, "Materialized", name="asset-graph")
        # The finished run: its success.
        problems += _missing_on_page(browser, f"{server.url}/runs/{finished.run_id}", "Success",
                                     finished.run_id[:8], name="finished-run")
        # The held run's failed check, picked from the asset's checks: its name, its failure and its summary.
        problems += _missing_on_page(browser, f"{server.url}/assets/{HELD_ASSET}?view=checks", HELD_CHECK,
                                     "Failed", summary[:60], name="failed-check", click=HELD_CHECK)
        assert not problems, "\n\n".join(problems)
    finally:
        server.stop()
