"""The renderer interface (pipeline.renderers): a renderer is one class and one line in
RENDERERS, and everything a run does with stems (leveling, file names, run.json, the Live
set) works for it without another edit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from stemforge.audio.stems import StemSet, loop_samples
from stemforge.pipeline.renderers import RENDERERS, Renderer, needs_weights, renderer_named
from stemforge.pipeline.request import RunError, RunRequest
from stemforge.pipeline.run import run
from stemforge.symbolic.music.arrangement import Arrangement


class SineRenderer:
    """A renderer defined in a test: every note of every part as a sine at its pitch."""

    name = "sine"
    renders_takes_together = True
    needs_weights = False

    def check(self, request: RunRequest) -> str | None:
        return None

    def identity(self, request: RunRequest) -> dict:
        return {"sine": "plain"}

    def render(self, arrangement: Arrangement, request: RunRequest, progress) -> tuple[StemSet, dict]:
        conditions = arrangement.conditions
        rate = request.sample_rate
        length = loop_samples(conditions.bars, conditions.bpm, rate)
        stems = {}
        for role, track in arrangement.tracks.items():
            audio = np.zeros(length, dtype=np.float32)
            for note in track.notes:
                start = round(arrangement.seconds(note.start) * rate)
                end = min(length, round(arrangement.seconds(note.start + note.duration) * rate))
                if start < end:
                    t = np.arange(end - start) / rate
                    audio[start:end] += 0.1 * np.sin(2 * np.pi * 440 * 2 ** ((note.pitch - 69) / 12) * t)
            stems[role] = np.stack([audio, audio])
            progress(f"sine {role}", 0.9)
        return StemSet(rate, conditions.bpm, conditions.bars, stems), {"renderer": self.name, "warnings": []}


def test_a_renderer_registered_by_one_line_runs_through_run_with_the_stem_contract(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sine: Renderer = SineRenderer()  # satisfies the protocol as written
    monkeypatch.setitem(RENDERERS, "sine", sine)  # the one line a new renderer adds
    seen: list[str] = []
    result = run(RunRequest(prompt="lofi 80bpm", model=tiny_model, out=tmp_path / "run", seed=3, bars=2, stems=True,
                            renderer="sine", sample_rate=22050),
                 lambda stage, fraction: seen.append(stage))
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert manifest["renderer"] == "sine"
    roles = set(result.arrangement.tracks)
    assert set(manifest["stems"]) == roles and roles
    expected = round(2 * 4 * 60 / 80 * 22050)
    for role, relative in manifest["stems"].items():
        assert relative == f"stems/{manifest['name']}_{role}.wav"
        info = soundfile.info(result.run_dir / relative)
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (expected, 22050, 2, "PCM_24")
    mix = soundfile.info(result.run_dir / manifest["mix"])
    assert manifest["mix"] == f"{manifest['name']}_mix.wav" and mix.frames == expected
    assert any(stage.startswith("sine ") for stage in seen) and seen[-1] == "done"
    # its own settings name the files: another identity, another name for the same MIDI
    monkeypatch.setattr(SineRenderer, "identity", lambda self, request: {"sine": "other"})
    again = run(RunRequest(prompt="lofi 80bpm", model=tiny_model, out=tmp_path / "again", seed=3, bars=2, stems=True,
                           renderer="sine", sample_rate=22050))
    assert again.manifest.name != result.manifest.name and again.manifest.midi.keys() == result.manifest.midi.keys()


def test_an_unknown_renderer_is_refused_naming_the_ones_there_are() -> None:
    with pytest.raises(RunError, match="unknown renderer 'tape'; use sample or musicgen"):
        RunRequest(prompt="lofi", stems=True, renderer="tape").check()
    with pytest.raises(RunError):
        renderer_named("tape")
    assert renderer_named("sample").name == "sample" and renderer_named("musicgen").name == "musicgen"
    assert needs_weights("musicgen") and not needs_weights("sample") and not needs_weights(None)
