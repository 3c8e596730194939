"""One request schema and one run manifest: the CLI's flags and the API's fields are derived
from RunRequest (they had drifted: the API once refused key_bias, the keep-every-role rule lived
only in the service), both judge a request with the same rules and messages, and run.json is
read everywhere through RunManifest, which checks its format version."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stemforge.pipeline.cli import build_parser, main
from stemforge.pipeline.flags import request_from_args
from stemforge.pipeline.request import RunError, RunRequest, cli_flag, request_fields
from stemforge.pipeline.service import JobRequest, ServiceLimits, create_app
from stemforge.symbolic.runtime.run_manifest import MANIFEST_VERSION, ManifestError, RunManifest


def _run_namespace(*flags: str):
    return build_parser().parse_args(["run", *flags])


def test_the_cli_flags_and_the_api_fields_are_the_request_fields_with_their_defaults() -> None:
    flags = {item.name for item, spec in request_fields() if cli_flag(item, spec)}
    parsed = _run_namespace()
    assert set(vars(parsed)) - {"command", "func"} == flags
    assert request_from_args(parsed) == RunRequest()  # no flag given: every default is the request's

    api = {item.name: spec for item, spec in request_fields() if spec.api}
    assert set(JobRequest.model_fields) == set(api) | {"from_job", "from_take", "like_loop"}  # the service's own
    defaults = RunRequest().to_json()
    for name, spec in api.items():
        expected = spec.api_default if spec.has_api_default else defaults[name]
        assert JobRequest.model_fields[name].get_default(call_default_factory=True) == expected, name
    assert JobRequest.model_fields["stems"].get_default() is True  # the page always wants stems
    assert JobRequest.model_fields["key_bias"].description.startswith("how strongly")  # the help, once


def test_flags_with_their_own_syntax_become_typed_request_values() -> None:
    request = request_from_args(_run_namespace(
        "--loop", "off", "--keep", "drums, bass", "--from", "earlier", "--instrument", "bass=33",
        "--instrument", "melody=Electric Piano 1", "--swing", "60", "--seed-midi", "clip.mid", "--top-k", "0"))
    assert request.loop == 0 and request.keep == ("drums", "bass") and request.from_run == Path("earlier")
    assert request.instruments == {"bass": "33", "melody": "Electric Piano 1"}
    assert request.swing == 60.0 and request.seed_midi == Path("clip.mid")


def test_a_request_travels_as_json_and_comes_back_equal() -> None:
    request = RunRequest(prompt="lofi", keep=("drums",), from_run=Path("/runs/a"), instruments={"bass": "33"},
                         out=Path("/runs/b"), seed=7, stems=True)
    assert RunRequest.from_json(json.loads(json.dumps(request.to_json()))) == request
    # a job stored before a field existed takes the field's default
    assert RunRequest.from_json({"prompt": "lofi"}).key_bias == RunRequest().key_bias
    with pytest.raises(RunError, match="unknown field"):  # a job stored by a newer stemforge fails cleanly
        RunRequest.from_json({"prompt": "lofi", "volume": 11})


# (flag values, API body, field): one rule, one message, one field on both front ends
SAME_RULE = {
    "temperature zero": (["--temperature", "0"], {"temperature": 0}, "temperature"),
    "top_p above one": (["--top-p", "2"], {"top_p": 2}, "top_p"),
    "loop of three": (["--loop", "3"], {"loop": 3}, "loop"),
    "unknown role kept": (["--keep", "vocals"], {"keep": ["vocals"]}, "keep"),
    "keep without an earlier run": (["--keep", "bass"], {"keep": ["bass"]}, "keep"),
    "sample rate": (["--stems", "--sample-rate", "1000"], {"sample_rate": 1000}, "sample_rate"),
    "unknown instrument role": (["--stems", "--instrument", "vox=3"], {"instruments": {"vox": "3"}}, "instruments"),
    "unknown key": (["--key", "H major"], {"key": "H major"}, "key"),
    "unknown decoder": (["--decoder", "gpu"], {"decoder": "gpu"}, "decoder"),
}


@pytest.fixture(scope="module")
def app_client(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """The service's request path without its workers (a TestClient outside `with` runs no lifespan)."""
    app = create_app(tmp_path_factory.mktemp("service"), None, tiny_model, 1, ServiceLimits())
    yield TestClient(app)
    app.state.stemforge.close()


@pytest.mark.parametrize("case", list(SAME_RULE), ids=list(SAME_RULE))
def test_the_cli_and_the_api_refuse_a_request_with_the_same_rule_and_words(
        case: str, tiny_model: Path, tmp_path: Path, capsys, app_client: TestClient) -> None:
    flags, body, field = SAME_RULE[case]
    code = main(["run", "--prompt", "lofi", "--model", str(tiny_model), "--out", str(tmp_path / "o"), *flags])
    cli_message = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and cli_message.startswith("error: ") and not (tmp_path / "o").exists()

    response = app_client.post("/jobs", json={"prompt": "lofi", **body})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"][-1] == field
    # the same sentence after the field's name (the CLI spells it as its flag)
    assert cli_message.split(":", 2)[-1].strip() == detail["msg"].split(":", 1)[-1].strip()


# ---------------------------------------------------------------- run.json

@pytest.fixture(scope="module")
def a_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stemforge.pipeline.run import run

    out = tmp_path_factory.mktemp("manifest") / "run"
    run(RunRequest(prompt="rock 120bpm", model=tiny_model, bars=2, seed=5, out=out))
    return out


def test_run_json_reads_back_typed_and_writes_the_same_document(a_run: Path, tmp_path: Path) -> None:
    manifest = RunManifest.read(a_run)
    assert manifest.stemforge == MANIFEST_VERSION and manifest.conditions.bpm == 120.0
    assert set(manifest.parts()) == {"drums", "bass", "melody"}
    assert all(manifest.midi_path(role, a_run).is_file() for role in manifest.parts())
    assert manifest.stem_paths(a_run) == {}  # composed without --stems
    manifest.write(tmp_path)
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads((a_run / "run.json").read_text())


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(stemforge=MANIFEST_VERSION + 1), "written by a newer stemforge"),
    (lambda d: d.pop("stemforge"), "not a stemforge run manifest"),
    (lambda d: d.update(volume=11), "unknown field(s) ['volume']"),
    (lambda d: d.pop("midi"), "field 'midi' is missing"),
    (lambda d: d["conditions"].update(tempo=3), "conditions"),
], ids=["newer format", "no version", "unknown field", "no midi", "bad conditions"])
def test_a_run_json_stemforge_cannot_read_is_one_line_naming_the_file(a_run: Path, tmp_path: Path, capsys,
                                                                      change, words: str) -> None:
    folder = tmp_path / "run"
    shutil.copytree(a_run, folder)
    document = json.loads((folder / "run.json").read_text())
    change(document)
    (folder / "run.json").write_text(json.dumps(document))
    with pytest.raises(ManifestError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        RunManifest.read(folder)
    # every reader goes through it: render, eval and --from say the same
    for argv in (["render", str(folder)], ["eval", str(folder), "--out", str(tmp_path / "report")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "run.json" in err and len(err.splitlines()) == 1, err
    assert not (folder / "stems").exists() and not (tmp_path / "report").exists()


def test_a_render_replaces_every_render_field_of_the_manifest(a_run: Path) -> None:
    manifest = RunManifest.read(a_run)
    manifest.add_render({"renderer": "musicgen", "musicgen": {"model": "m"}, "stems": {"bass": "stems/b.wav"}})
    manifest.add_render({"renderer": "sample", "stems": {"bass": "stems/c.wav"}, "mix": "mix.wav"})
    assert manifest.musicgen is None and manifest.stems == {"bass": "stems/c.wav"}
    with pytest.raises(TypeError, match="unknown field"):
        manifest.add_render({"sidechain": -14})
    assert dataclasses.replace(manifest).to_dict()["renderer"] == "sample"


def test_the_service_docs_name_every_field_of_the_request_body() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "service.md").read_text()
    # the body's fields are the table generated from JobRequest (scripts/gen_docs.py), no longer a list in the row
    row = docs[docs.index("<!-- generated:api-fields -->"):docs.index("<!-- /generated:api-fields -->")]
    assert [name for name in JobRequest.model_fields if name not in row] == []


@pytest.mark.parametrize("takes", [0, 17])
def test_takes_out_of_range_are_refused_naming_the_flag(takes: int) -> None:
    with pytest.raises(RunError, match="--takes"):
        RunRequest(takes=takes).check()
