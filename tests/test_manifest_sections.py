"""run.json's tables as dataclasses (symbolic.run_manifest Section): a run's run.json reads and
writes back byte for byte, an older one (a key not yet written, a key since dropped) still loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stemforge.pipeline.run import RunRequest, run
from stemforge.symbolic.music.conditions import Conditions
from stemforge.symbolic.runtime.run_manifest import (
    ContextRecord,
    FeelRecord,
    KitRecord,
    LoudnessRecord,
    ManifestError,
    ModelRecord,
    RunManifest,
    SamplingRecord,
    SoundFontRecord,
    TakeRecord,
)


def test_a_runs_manifest_is_typed_and_reads_and_writes_back_byte_for_byte(tiny_model: Path, tmp_path: Path) -> None:
    result = run(RunRequest(prompt="lofi 80bpm", model=tiny_model, out=tmp_path / "run", seed=3, bars=1, takes=2,
                            keep=(), temperature=0.9, stems=True, sample_rate=22050))
    for take in result.takes:
        text = (take.run_dir / "run.json").read_text()
        manifest = RunManifest.read(take.run_dir)
        assert json.dumps(manifest.to_dict(), indent=1) == text
        assert isinstance(manifest.sampling, SamplingRecord) and manifest.sampling.temperature == 0.9
        assert isinstance(manifest.model, ModelRecord) and manifest.model.sha256 and manifest.model.path == str(tiny_model)
        assert isinstance(manifest.context, ContextRecord) and manifest.context.keep == [] and manifest.context.from_run is None
        assert isinstance(manifest.take, TakeRecord) and manifest.take.of == 2 and manifest.take.decoder == "batched"
        assert isinstance(manifest.feel, FeelRecord) and manifest.feel.groove and manifest.feel.quantized is False
        assert isinstance(manifest.soundfont, SoundFontRecord) and manifest.soundfont.sha256
        assert isinstance(manifest.kit, KitRecord) and manifest.kit.kind
        assert isinstance(manifest.loudness, LoudnessRecord) and manifest.loudness.integrated_lufs is not None
        assert manifest.render_setup()["soundfont"] == json.loads(text)["soundfont"]  # plain JSON for eval's cache key
        raw = json.loads(text)
        assert list(raw["context"]) == ["seed_midi", "from", "keep", "like"]  # "from", as run.json always spelled it
        assert list(raw["sampling"]) == ["temperature", "top_k", "top_p", "key_bias", "decoder"]


def test_an_older_run_json_loads_and_keeps_what_this_stemforge_does_not_know(tmp_path: Path) -> None:
    data = RunManifest(conditions=Conditions(), seed=1, midi={}).to_dict()
    assert data["sampling"] == data["model"] == data["context"] == {} and "take" not in data  # unrecorded: as before
    data["context"] = {"seed_midi": None, "from": "runs/a", "keep": ["drums"]}  # before --like existed
    data["model"] = {"path": "m", "sha256": "ab", "data_sha256": None, "name": "old key"}
    manifest = RunManifest.from_dict(data)
    assert manifest.context.from_run == "runs/a" and manifest.context.like is None and manifest.context["from"] == "runs/a"
    assert manifest.model.sha256 == "ab" and manifest.to_dict()["model"]["name"] == "old key"
    # a table read without a key (run.json before --like, before limiting_db; a quantized feel) writes back without it
    assert list(manifest.to_dict()["context"]) == ["seed_midi", "from", "keep"]
    data["feel"] = {"quantized": True, "swing_percent": 50.0}
    assert RunManifest.from_dict(data).to_dict()["feel"] == {"quantized": True, "swing_percent": 50.0}
    with pytest.raises(ManifestError, match="model"):
        RunManifest.from_dict({**data, "model": ["not", "a", "table"]})
