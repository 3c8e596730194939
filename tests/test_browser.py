"""The page in headless Chromium, as a producer uses it: type a prompt, wait for the job, hear
(here: inspect) every stem loaded into one Web Audio transport, solo/mute, volume and pan per
stem, waveforms, drag a stem or MIDI clip out, tell regenerated takes apart in the job list,
remove a job (after confirming), download the zip. Screenshots of the result panel and the job
list are saved in the test's tmp_path (their paths are printed; `pytest -s` shows them).

Needs Debian's chromium (`apt-get install -y chromium`) and the Python package playwright
(`pip install playwright`; its own browser download is not used). Skips, saying which is
missing, where either is absent or Chromium cannot start here.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest

from tests.test_service import ServiceProcess, post, wait_for, write_config

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


@contextmanager
def signed_in_page(browser, service: ServiceProcess):
    """A fresh page that took the token and sees the service healthy; an error in the page's
    JavaScript fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{service.url}/?token={TOKEN}")
        page.wait_for_function("document.querySelector('#health').textContent.startsWith('ok')")
        yield page
    finally:
        context.close()
    assert not errors, errors


def compose_and_play(page, prompt: str, bars: int, takes: int | None = None, dawproject: bool = False) -> str:
    """Compose from the form and wait for autoplay: every stem decoded and started on one
    transport. Returns the job id."""
    page.fill("#prompt", prompt)
    page.fill("#field-bars", str(bars))
    if takes is not None:
        page.fill("#field-takes", str(takes))
    if dawproject:
        page.evaluate("document.querySelector('#field-dawproject').closest('details').open = true")  # "More" folds open
        page.check("#field-dawproject")
    page.click("#compose-button")
    page.wait_for_function("window.stemforgePlayer.playing === true", timeout=60_000)
    return page.evaluate("window.stemforgePlayer.jobId")


def gains(page) -> dict[str, float]:
    return page.evaluate("Object.fromEntries(Object.entries(window.stemforgePlayer.stems)"
                         ".map(([role, s]) => [role, s.gain.gain.value]))")


def mix(page, role: str) -> tuple[float, float]:
    """(fader gain, pan) of a stem's GainNode and StereoPannerNode."""
    return tuple(page.evaluate(f"[window.stemforgePlayer.stems.{role}.volume.gain.value, "
                               f"window.stemforgePlayer.stems.{role}.panner.pan.value]"))


def check_volume_and_pan(page) -> None:
    """The bass fader to -12 dB and its pan 48% left, by the labelled sliders and the keyboard;
    solo/mute gate on top; the settings hold through stop/play and a loop toggle."""
    volume = page.get_by_role("slider", name="bass volume")
    pan = page.get_by_role("slider", name="bass pan")
    volume.fill("-12")
    pan.fill("-50")
    pan.press("ArrowRight")
    pan.press("ArrowRight")
    expected = (10 ** (-12 / 20), -0.48)
    assert mix(page, "bass") == pytest.approx(expected, abs=1e-4)
    assert mix(page, "drums") == pytest.approx((1, 0)) and mix(page, "melody") == pytest.approx((1, 0))
    assert page.text_content(".stem[data-role=bass] .fader.volume output") == "−12.0 dB"
    assert page.text_content(".stem[data-role=bass] .fader.pan output") == "L 48"
    assert pan.get_attribute("aria-valuetext") == "L 48"
    assert gains(page) == {"drums": 1, "bass": 1, "melody": 1}  # the fader is not the solo/mute gate
    page.click(".stem[data-role=bass] .solo")
    assert gains(page) == {"drums": 0, "bass": 1, "melody": 0}
    page.click(".stem[data-role=bass] .solo")
    page.click("#play")  # stop
    page.click("#loop")
    page.click("#loop")
    page.click("#play")  # play again: new sources, the same channel strips
    assert page.evaluate("window.stemforgePlayer.playing") is True
    assert mix(page, "bass") == pytest.approx(expected, abs=1e-4)
    assert page.input_value(".stem[data-role=bass] .fader.volume input") == "-12"
    # the live meter moves while playing
    page.wait_for_function("[...document.querySelectorAll('.stem .level .fill')]"
                           ".some((f) => f.style.transform && f.style.transform !== 'scaleX(0)')", timeout=10_000)


def check_waveforms(page, roles) -> None:
    """Every stem's waveform canvas has the stem's peaks drawn (more than the zero line)."""
    for role in roles:
        drawn = page.evaluate("""(role) => {
            const canvas = document.querySelector(`.stem[data-role=${role}] canvas.wave`);
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            const columns = new Set();
            let coloured = 0;
            for (let i = 0; i < pixels.length; i += 4) {
                const grey = pixels[i] === pixels[i + 1] && pixels[i + 1] === pixels[i + 2];
                if (pixels[i + 3] && !grey) { coloured++; columns.add((i / 4) % canvas.width); }
            }
            return {coloured, columns: columns.size, width: canvas.width, height: canvas.height};
        }""", role)
        assert drawn["coloured"] > drawn["width"], (role, drawn)
        assert drawn["columns"] > drawn["width"] // 10, (role, drawn)


def drag_out_items(page) -> list[dict]:
    """Start a drag on every draggable stem/MIDI element and read what it hands the drop target."""
    return page.evaluate("""() => [...document.querySelectorAll('#result [draggable=true]')].map((element) => {
        const transfer = new DataTransfer();
        element.dispatchEvent(new DragEvent('dragstart', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        return {file: element.dataset.file, tag: element.tagName.toLowerCase(),
                role: element.closest('.stem')?.dataset.role ?? null,
                downloadUrl: transfer.getData('DownloadURL'), uri: transfer.getData('text/uri-list')};
    })""")


def check_drag_out(page, service: ServiceProcess, job: str, run: dict) -> None:
    """Each stem's WAV and each part's MIDI (link and canvas), the mix and the full MIDI drag out
    as Chromium's DownloadURL "mime:name:absolute URL"; the URL is fetched as a drop fetches it,
    with no Authorization header: with a token, the link carries the job's signed query."""
    mime = {".wav": "audio/wav", ".mid": "audio/midi", ".als": "application/octet-stream"}
    expected = {Path(p).name: p for p in [*run["stems"].values(), *run["midi"].values(), run["mix"], run["live_set"]]}
    items = drag_out_items(page)
    assert {item["file"] for item in items} == set(expected)
    for role in run["stems"]:  # link and waveform for the WAV, link and piano roll for the MIDI
        files = [item["file"] for item in items if item["role"] == role]
        assert sorted(files) == sorted([Path(run["stems"][role]).name] * 2 + [Path(run["midi"][role]).name] * 2)
    with service.client() as client:
        signed = client.get(f"/jobs/{job}").json()["file_query"]
        assert (signed is not None) == bool(service.token)
        for item in items:
            kind, name, url = item["downloadUrl"].split(":", 2)
            path = expected[name]
            assert name == item["file"] and kind == mime[Path(name).suffix], item
            base = f"{service.url}/jobs/{job}/files/{path}?download=1"
            signature = r"&exp=\d+&sig=[0-9a-f]{64}" if signed else ""  # the page's own signed query
            assert re.fullmatch(re.escape(base) + signature, url) and url == item["uri"], item
            authorized = client.get(base)
            assert authorized.status_code == 200 and f'filename="{name}"' in authorized.headers["content-disposition"]
            plain = httpx.get(url, timeout=30)  # what the browser's drop download sends: no header, no cookie
            assert plain.status_code == 200 and plain.content == authorized.content, (name, plain.status_code)
        if signed:  # the signature opens this job's files only, and not once tampered with
            other = httpx.get(f"{service.url}/jobs/{job}/files/{path}?{signed.replace('sig=', 'sig=0')}", timeout=30)
            listing = httpx.get(f"{service.url}/jobs?{signed}", timeout=30)
            assert other.status_code == 401 and listing.status_code == 401


def job_titles(page) -> dict[str, str]:
    return page.evaluate("Object.fromEntries([...document.querySelectorAll('#jobs li')]"
                         ".map((li) => [li.dataset.id, li.querySelector('.title').textContent]))")


def check_titles(page, service: ServiceProcess, parent: str, child: str) -> str:
    """A second regeneration of the bass (MIDI only, its own seed): parent and both children have
    different titles, each with conditions and seed; the children say what they made again and
    from which take. Returns the second child's id."""
    with service.client() as client:
        runs = {job_id: client.get(f"/jobs/{job_id}").json()["run"] for job_id in (parent, child)}
        second = post(client, from_job=parent, keep=["drums", "melody"], stems=False,
                      seed=(runs[child]["seed"] + 1) % 2**31)["id"]
        runs[second] = wait_for(client, second, ("done", "failed"))["run"]
    page.wait_for_function(f"document.querySelector('#jobs li[data-id=\"{second}\"] .title')?.textContent"
                           f".endsWith('seed {runs[second]['seed']}')", timeout=15_000)
    titles = job_titles(page)
    assert len({titles[parent], titles[child], titles[second]}) == 3, titles
    for job_id in (parent, child, second):
        c = runs[job_id]["conditions"]
        for part in (c["genre"], f"{c['bpm']:g} bpm", c["key"], f"{c['bars']} bars", f"seed {runs[job_id]['seed']}"):
            assert part in titles[job_id], (part, titles[job_id])
    for job_id in (child, second):
        assert titles[job_id].startswith("bass again · from ") and f"(seed {runs[parent]['seed']})" in titles[job_id]
    return second


def check_midi_only_result(page, service: ServiceProcess, job: str) -> None:
    """A MIDI-only job (no stems, mix or sample rate in its run.json) opens with piano rolls and
    draggable MIDI files, and no faders or waveforms."""
    with service.client() as client:
        run = client.get(f"/jobs/{job}").json()["run"]
    assert not run.get("stems") and not run.get("mix")  # absent, or empty where run.json keeps the key
    page.click(f"#jobs li[data-id='{job}'] .title")
    page.wait_for_function("document.querySelector('#player-status').textContent.includes('MIDI only')")
    assert page.locator(".stem canvas.notes").count() == 3
    assert page.locator(".stem canvas.wave").count() == page.locator(".stem .fader").count() == 0
    files = sorted(item["file"] for item in drag_out_items(page))
    assert files == sorted([Path(run["midi"][role]).name for role in ("drums", "bass", "melody")] * 2
                           + [Path(run["midi"]["full"]).name, Path(run["live_set"]).name])
    assert page.is_disabled("#play")


def check_remove_asks_first(page, service: ServiceProcess, job: str) -> None:
    """"remove" asks; declined, the job stays; accepted, it goes."""
    asked: list[str] = []

    def answer(accept: bool):
        def handle(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handle

    remove = f"#jobs li[data-id='{job}'] .delete"
    page.once("dialog", answer(False))
    page.click(remove)
    page.wait_for_timeout(500)  # time for a DELETE, had one been sent
    with service.client() as client:
        assert client.get(f"/jobs/{job}").status_code == 200
    assert page.locator(f"#jobs li[data-id='{job}']").count() == 1
    page.once("dialog", answer(True))
    page.click(remove)
    page.wait_for_selector(f"#jobs li[data-id='{job}']", state="detached", timeout=10_000)
    with service.client() as client:
        assert client.get(f"/jobs/{job}").status_code == 404
    assert len(asked) == 2 and asked[0].startswith("Remove “bass again"), asked


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
        job = compose_and_play(page, "hiphop 90bpm", bars=2)
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

        check_volume_and_pan(page)
        check_waveforms(page, run["stems"])
        check_drag_out(page, page_service, job, run)
        downloads = page.locator("#downloads a").all_text_contents()
        assert Path(run["mix"]).name in downloads and Path(run["midi"]["full"]).name in downloads, downloads
        assert "mix.wav" not in downloads and "full.mid" not in downloads

        page.wait_for_timeout(300)  # let the playhead move for the screenshot
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        page.locator("#result").screenshot(path=str(tmp_path / "result.png"))

        with page.expect_download() as download_info:
            page.click("#download-zip")
        saved = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(saved)
        names = zipfile.ZipFile(saved).namelist()
        root = names[0].split("/")[0]
        assert {f"{root}/{path}" for path in run["stems"].values()} <= set(names)
        # the bass fader and pan moved above (check_volume_and_pan) reach the zip: its run.json
        # records them, its mix is re-rendered and its Live set's bass track carries them
        exported = json.loads(zipfile.ZipFile(saved).read(f"{root}/run.json"))
        assert exported["mixer"] == {"bass": {"volume_db": -12.0, "pan": -0.48}}
        changed = {name for name, digest in exported["files"].items() if run["files"].get(name) != digest}
        assert changed == {run["mix"], run["live_set"]}, changed
        assert {k: v for k, v in exported.items() if k not in ("mixer", "files")} == \
            {k: v for k, v in run.items() if k != "files"}
        live_set = ET.fromstring(gzip.decompress(zipfile.ZipFile(saved).read(f"{root}/{run['live_set']}")))
        bass = next(t for t in live_set.iter("AudioTrack") if t.find("Name/UserName").get("Value") == "bass")
        assert float(bass.find("DeviceChain/Mixer/Volume/Manual").get("Value")) == pytest.approx(10 ** (-12 / 20))
        assert float(bass.find("DeviceChain/Mixer/Pan/Manual").get("Value")) == -0.48

        with page.expect_download() as download_info:
            page.click(".stem[data-role=bass] .files a:has-text('mid')")
        assert download_info.value.suggested_filename == Path(run["midi"]["bass"]).name

        # regenerate the bass keeping drums and melody: the new result opens and plays by itself
        page.click(".stem[data-role=bass] .regenerate")
        page.wait_for_function(f"window.stemforgePlayer.jobId !== '{job}' && window.stemforgePlayer.playing",
                               timeout=60_000)
        child = page.evaluate("window.stemforgePlayer.jobId")
        with page_service.client() as client:
            request = client.get(f"/jobs/{child}").json()["request"]
        assert request["from_job"] == job and request["keep"] == ["drums", "melody"]
        # fader and pan belong to the part: the new bass sounds where the old one was set
        assert mix(page, "bass") == pytest.approx((10 ** (-12 / 20), -0.48), abs=1e-4)
        page.wait_for_function("document.querySelector('.stem[data-role=bass] canvas.wave').width > 1")
        check_waveforms(page, run["stems"])

        second = check_titles(page, page_service, job, child)
        page.locator("#compose-panel").screenshot(path=str(tmp_path / "jobs.png"))
        page.locator("#result").screenshot(path=str(tmp_path / "result-regenerated.png"))
        page.click("#play")
        assert page.evaluate("window.stemforgePlayer.playing") is False

        check_midi_only_result(page, page_service, second)
        check_remove_asks_first(page, page_service, second)
        assert page.is_hidden("#result")  # the removed job was the open one
    finally:
        page.screenshot(path=str(tmp_path / "page-final.png"), full_page=True)
        context.close()
        for name in ("result.png", "result-regenerated.png", "jobs.png", "page-final.png"):
            print(f"screenshot: {tmp_path / name}")
    assert not errors, errors
    outside = [url for url in requests if not url.startswith((page_service.url, "blob:", "data:"))]
    assert not outside, f"the page reached beyond the service: {outside}"


def test_takes_are_chosen_played_and_regenerated_from_on_the_page(browser, page_service: ServiceProcess,
                                                                  tmp_path: Path) -> None:
    with signed_in_page(browser, page_service) as page:
        job = compose_and_play(page, "rock 120bpm", bars=1, takes=2, dawproject=True)
        with page_service.client() as client:
            takes = client.get(f"/jobs/{job}").json()["takes"]
        # one Live set and one DAWproject for the job, a scene per take, offered with every take
        assert len({os.path.normpath(t["live_set"]) for t in takes}) == 1
        assert os.path.normpath(takes[0]["dawproject"]).endswith("_2takes.dawproject")
        assert page.locator("#take-picker button").all_text_contents() == [f"take {n} · seed {t['seed']}"
                                                                     for n, t in enumerate(takes, 1)]
        downloads = page.locator("#downloads a").all_text_contents()
        assert Path(takes[0]["mix"]).name in downloads and Path(takes[0]["live_set"]).name in downloads
        assert Path(takes[0]["dawproject"]).name in downloads

        page.click("#take-picker button[data-take='2']")  # the second take: its files, notes and stems
        page.wait_for_function("document.querySelector(\"#take-picker button[data-take='2']\")"
                               ".getAttribute('aria-pressed') === 'true'")
        page.wait_for_function(f"[...document.querySelectorAll('#downloads a')].some("
                               f"(a) => a.textContent === {Path(takes[1]['mix']).name!r})")
        page.screenshot(path=str(tmp_path / "takes.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'takes.png'}")
        page.click(".stem[data-role=bass] .regenerate")  # a new bass for take 2's drums and melody
        with page_service.client() as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                child = next((j for j in client.get("/jobs").json()["jobs"] if j["request"].get("from_job") == job),
                             None)
                if child and child["status"] == "done":
                    break
                time.sleep(0.3)
            assert child and child["request"]["from_take"] == 2 and child["status"] == "done"
            child_notes = client.get(f"/jobs/{child['id']}/notes").json()["tracks"]
            second_notes = client.get(f"/jobs/{job}/notes", params={"take": 2}).json()["tracks"]
        assert child_notes["drums"] == second_notes["drums"] and child_notes["melody"] == second_notes["melody"]
        # its title names the take it came from and that take's seed (it named take 1's)
        page.wait_for_function(f"document.querySelector('#jobs li[data-id=\"{child['id']}\"] .title')?.textContent"
                               f".includes('(take 2, seed {takes[1]['seed']})')", timeout=15_000)


def test_a_reference_loop_uploaded_on_the_page_sets_the_tempo_and_key(browser, page_service: ServiceProcess,
                                                                      tmp_path: Path) -> None:
    import soundfile

    from tests.test_loop_analysis import RATE, _loop

    clip = tmp_path / "my loop.wav"
    soundfile.write(clip, _loop(92.0, ["Am", "F", "C", "G"], bars=2), RATE, subtype="PCM_16")
    with signed_in_page(browser, page_service) as page:
        page.set_input_files("#like", str(clip))
        page.wait_for_function("document.querySelector('#like-status').textContent.includes('bpm')", timeout=60_000)
        said = page.text_content("#like-status")
        assert said.startswith("my loop.wav: 92") and ("A minor" in said or "C major" in said), said
        job = compose_and_play(page, "rock", bars=1)
        with page_service.client() as client:
            found = client.get(f"/jobs/{job}").json()
        assert found["request"]["like_loop"] and abs(found["run"]["conditions"]["bpm"] - 92.0) <= 1.0
        page.screenshot(path=str(tmp_path / "reference-loop.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'reference-loop.png'}")

        text = tmp_path / "notes.wav"
        text.write_text("not audio")
        page.set_input_files("#like", str(text))  # a clear line, and the next request has no loop
        page.wait_for_function("document.querySelector('#like-status').textContent.includes('not readable audio')")
        assert "like_loop" not in page.evaluate("formRequest()")


class ExtraFieldService(ServiceProcess):
    """The service with one request field more than RunRequest has (tests/service_with_extra_field.py)."""

    entry = (str(Path(__file__).with_name("service_with_extra_field.py")),)


def test_a_field_added_to_the_request_appears_on_the_page_and_reaches_the_job(browser, tiny_model: Path,
                                                                              tmp_path: Path) -> None:
    """The form is built from GET /schema: a field added to the request (`humanize_ms`, only in
    the test's service) is on the page with its label, group, default, bounds and help, with
    nothing in pipeline/static edited; set there, it reaches the job, which composes."""
    server = ExtraFieldService(tmp_path / "data", tiny_model, write_config(tmp_path / "service.yaml"))
    server.start(token=TOKEN)
    try:
        with server.client() as client:
            schema = client.get("/schema").json()
            service_max_bars = client.get("/models").json()["service_max_bars"]
        assert schema["properties"]["humanize_ms"]["default"] == 4.0
        with signed_in_page(browser, server) as page:
            label = page.locator("#more-fields fieldset[data-group=feel] label:has(#field-humanize_ms)")
            assert label.count() == 1
            assert label.text_content().strip() == "Humanize ms"
            assert label.get_attribute("title") == "test-only field: micro-timing spread in milliseconds"
            control = page.locator("#field-humanize_ms")
            assert control.get_attribute("type") == "number" and control.input_value() == "4"
            assert (control.get_attribute("min"), control.get_attribute("max"), control.get_attribute("step")) == \
                ("0", "30", "any")
            # every field of the request has a control, but those the page sets with its own
            controls = set(page.evaluate("[...document.querySelectorAll('#compose-form [name]')].map((c) => c.name)"))
            assert controls == set(schema["properties"]) - {"like_loop", "keep", "from_job", "from_take"} | {"like"}
            featured = page.evaluate("[...document.querySelectorAll('#featured-fields [name]')].map((c) => c.name)")
            assert featured == ["bars", "bpm", "key", "seed", "takes", "stems"]
            # the service's own limits, not the request's: max_bars with the model's reach, max_takes
            assert page.get_attribute("#field-bars", "max") == str(service_max_bars)
            assert page.get_attribute("#field-takes", "max") == "4" and page.is_checked("#field-stems")
            assert page.locator("#field-renderer option").all_text_contents() == ["sample"]  # no musicgen_model
            assert page.locator("#field-density option").all_text_contents() == ["from prompt", "sparse", "normal", "busy"]
            page.fill("#prompt", "rock")
            assert page.evaluate("formRequest()") == {"prompt": "rock"}  # defaults are left to the API
            page.evaluate("document.querySelector('#more-fields').open = true")
            page.fill("#field-humanize_ms", "12.5")
            page.select_option("#field-density", label="sparse")
            page.locator("#compose-panel").screenshot(path=str(tmp_path / "form.png"))
            print(f"screenshot: {tmp_path / 'form.png'}")
            assert page.evaluate("formRequest()") == {"prompt": "rock", "humanize_ms": 12.5, "density": "sparse"}
            job = compose_and_play(page, "rock 100bpm", bars=1)
        with server.client() as client:
            found = client.get(f"/jobs/{job}").json()
        assert found["status"] == "done" and found["request"]["humanize_ms"] == 12.5
        assert found["request"]["density"] == found["run"]["conditions"]["density"] == "sparse"
    finally:
        server.stop()


def test_a_form_typed_on_the_page_shows_its_sections_on_every_lane(browser, page_service: ServiceProcess) -> None:
    """The form field comes from the request schema; the result's lanes mark each section at
    its first bar, named on the first lane."""
    with signed_in_page(browser, page_service) as page:
        page.fill("#prompt", "rock 120bpm")
        page.evaluate("document.querySelector('#field-form').closest('details').open = true")
        page.fill("#field-form", "intro:1 verse:2 chorus:1")
        page.click("#compose-button")
        page.wait_for_function("window.stemforgePlayer.playing === true", timeout=60_000)
        lanes = page.evaluate("[...document.querySelectorAll('.roll')].map(lane => [...lane.querySelectorAll("
                              "'.section-mark')].map(m => [m.dataset.section, m.style.left, m.textContent]))")
        assert len(lanes) >= 3
        assert all([(name, left) for name, left, _ in lane] == [("intro", "0%"), ("verse", "25%"), ("chorus", "75%")]
                   for lane in lanes)
        assert [text for _, _, text in lanes[0]] == ["intro", "verse", "chorus"]
