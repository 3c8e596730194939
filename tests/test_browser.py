"""The page in headless Chromium, as a producer uses it: type a prompt, wait for the job, hear
(here: inspect) every stem loaded into one Web Audio transport, solo/mute, download the zip.

Needs Debian's chromium (`apt-get install -y chromium`) and the Python package playwright
(`pip install playwright`; its own browser download is not used). Skips, saying which is
missing, where either is absent or Chromium cannot start here.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.test_service import ServiceProcess, write_config

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
TOKEN = "page-token"


def find_chromium() -> str | None:
    for candidate in (os.environ.get("STEMFORGE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install playwright")
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium found: apt-get install -y chromium (or set STEMFORGE_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as error:  # e.g. missing shared libraries in a minimal container
            pytest.skip(f"Chromium at {executable} cannot start here: {str(error).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page_service(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("page-service")
    server = ServiceProcess(root / "data", tiny_model, write_config(root / "service.yaml"))
    server.start(token=TOKEN)  # the LAN set-up: the page takes ?token= once and keeps it
    yield server
    server.stop()


def gains(page) -> dict[str, float]:
    return page.evaluate("Object.fromEntries(Object.entries(window.stemforgePlayer.stems)"
                         ".map(([role, s]) => [role, s.gain.gain.value]))")


def test_compose_play_solo_mute_and_download(browser, page_service: ServiceProcess, tmp_path: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 820}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(f"{page_service.url}/?token={TOKEN}")
        page.wait_for_function("document.querySelector('#health').textContent.startsWith('ok')")
        assert "token=" not in page.url  # taken into localStorage, not left in the address bar
        page.fill("#prompt", "hiphop 90bpm")
        page.fill("#bars", "2")
        page.click("#compose-button")
        # autoplay on a finished job: all stems decoded and started on one transport
        page.wait_for_function("window.stemforgePlayer.playing === true", timeout=60_000)
        job = page.evaluate("window.stemforgePlayer.jobId")
        with page_service.client() as client:
            run = client.get(f"/jobs/{job}").json()["run"]
        bpm, bars, rate = run["conditions"]["bpm"], run["conditions"]["bars"], run["sample_rate"]
        seconds = bars * 4 * 60 / bpm
        stems = page.evaluate("Object.fromEntries(Object.entries(window.stemforgePlayer.stems).map("
                              "([role, s]) => [role, {duration: s.buffer.duration, length: s.buffer.length, "
                              "rate: s.buffer.sampleRate, looping: s.source.loop}]))")
        assert set(stems) == set(run["stems"]) == {"drums", "bass", "melody"}
        for role, stem in stems.items():
            assert abs(stem["duration"] - seconds) < 0.001, role
            assert stem["length"] == round(seconds * rate) and stem["rate"] == rate and stem["looping"], role
        starts = page.evaluate("window.stemforgePlayer.startTime")
        assert starts > 0

        assert gains(page) == {"drums": 1, "bass": 1, "melody": 1}
        page.click(".stem[data-role=bass] .solo")
        assert gains(page) == {"drums": 0, "bass": 1, "melody": 0}
        page.click(".stem[data-role=melody] .solo")
        assert gains(page) == {"drums": 0, "bass": 1, "melody": 1}
        page.click(".stem[data-role=bass] .mute")
        assert gains(page) == {"drums": 0, "bass": 0, "melody": 1}
        page.click(".stem[data-role=bass] .solo")
        page.click(".stem[data-role=melody] .solo")
        assert gains(page) == {"drums": 1, "bass": 0, "melody": 1}
        page.click(".stem[data-role=bass] .mute")
        assert gains(page) == {"drums": 1, "bass": 1, "melody": 1}

        page.wait_for_timeout(300)  # let the playhead move for the screenshot
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

        with page.expect_download() as download_info:
            page.click("#download-zip")
        saved = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(saved)
        names = zipfile.ZipFile(saved).namelist()
        root = names[0].split("/")[0]
        assert {f"{root}/{path}" for path in run["stems"].values()} <= set(names)
        assert json.loads(zipfile.ZipFile(saved).read(f"{root}/run.json")) == run

        with page.expect_download() as download_info:
            page.click(".stem[data-role=bass] .files a:has-text('mid')")
        assert download_info.value.suggested_filename == "bass.mid"

        # regenerate the bass keeping drums and melody: the new result opens and plays by itself
        page.click(".stem[data-role=bass] .regenerate")
        page.wait_for_function(f"window.stemforgePlayer.jobId !== '{job}' && window.stemforgePlayer.playing",
                               timeout=60_000)
        child = page.evaluate("window.stemforgePlayer.jobId")
        with page_service.client() as client:
            request = client.get(f"/jobs/{child}").json()["request"]
        assert request["from_job"] == job and request["keep"] == ["drums", "melody"]

        page.click("#play")
        assert page.evaluate("window.stemforgePlayer.playing") is False
    finally:
        page.screenshot(path=str(tmp_path / "page-final.png"), full_page=True)
        context.close()
    assert not errors, errors
    outside = [url for url in requests if not url.startswith((page_service.url, "blob:", "data:"))]
    assert not outside, f"the page reached beyond the service: {outside}"
