"""Sample renderer: the stem contract (exact length, onsets on the grid, seamless loops),
presets, kits, and bad input. Uses pip's TimGM6mb.sf2 and one-shots synthesized here."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from stemforge.audio.assets import find_sounds, pip_soundfont
from stemforge.audio.drumkit import load_kit, render_drums
from stemforge.audio.effects import available_presets, load_preset
from stemforge.audio.render import (
    RenderError,
    RenderOptions,
    parse_instrument_flags,
    render_arrangement,
    write_stems,
)
from stemforge.audio.soundfont import NoteEvent, PresetSynth, read_soundfont, subset_bytes
from stemforge.audio.stems import MIX_CEILING_DB, StemSet, db_to_gain
from stemforge.audio.wav import read_acid_chunk, write_wav_24bit_acid
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Arrangement, Note, Track
from stemforge.symbolic.music.conditions import GENRES, ROLES, Conditions

SR = 44100
TIM = pip_soundfont()
pytestmark = pytest.mark.skipif(TIM is None, reason="pretty_midi's TimGM6mb.sf2 is not installed")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMFORGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STEMFORGE_SOUNDS", "")


def arrangement(
    bpm: float = 120.0, bars: int = 1, genre: str = "lofi", roles=ROLES, drum_notes=None
) -> Arrangement:
    """A small groove: kick/snare/hat, a bass line and a melody, at odd tick positions too."""
    T = TICKS_PER_BEAT
    tracks = {}
    for bar in range(bars):
        base = bar * 4 * T
        drum = drum_notes or [(0, 36, 110), (T, 38, 100), (2 * T + 37, 36, 90), (3 * T, 38, 120)]
        drum += [(beat * T + T // 2, 42, 70) for beat in range(4)] if not drum_notes else []
        tracks.setdefault("drums", Track("drums", 0, True, []))
        tracks["drums"].notes += [Note(base + t, T // 4, p, v) for t, p, v in drum]
        tracks.setdefault("bass", Track("bass", 33, False, []))
        tracks["bass"].notes += [Note(base, T, 45, 100), Note(base + 2 * T + 111, T, 52, 90)]
        tracks.setdefault("melody", Track("melody", 0, False, []))
        tracks["melody"].notes += [Note(base + i * T + 13 * i, T // 2, 69 + 2 * i, 90) for i in range(4)]
    tracks = {r: t for r, t in tracks.items() if r in roles}
    return Arrangement(Conditions(genre=genre, bpm=bpm, bars=bars), tracks)


def write_tone(path: Path, audio: np.ndarray, sample_rate: int = SR) -> Path:
    soundfile.write(
        str(path),
        audio.T if audio.ndim == 2 else audio,
        sample_rate,
        subtype="FLOAT" if path.suffix == ".wav" else None,
    )
    return path


def click(seconds: float, frequency: float, seed: int) -> np.ndarray:
    """A one-shot whose first sample is its loudest, so its onset is unambiguous."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    body = 0.6 * np.sin(2 * np.pi * frequency * t) + 0.3 * rng.standard_normal(len(t))
    body[0] = 1.0
    return (body * np.exp(-t / (seconds / 6))).astype(np.float32)


@pytest.fixture
def one_shot_kit(tmp_path) -> Path:
    folder = tmp_path / "kit"
    folder.mkdir()
    write_tone(folder / "kick.wav", click(0.25, 55, 1))
    write_tone(folder / "snare.wav", click(0.2, 190, 2))
    write_tone(folder / "hat.wav", click(0.05, 8000, 3))
    (folder / "README.txt").write_text("not a sample")
    return folder


def onsets_near(audio: np.ndarray, expected: list[int], window: int) -> list[int]:
    """First sample within ±window of each expected onset that reaches half the local peak."""
    mono = np.abs(audio).max(axis=0)
    found = []
    for at in expected:
        low = max(0, at - window)
        segment = mono[low : at + window]
        found.append(low + int(np.argmax(segment >= 0.5 * segment.max())))
    return found


# --- the stem contract ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bpm", "bars", "sample_rate"),
    [(80.0, 1, 44100), (87.5, 2, 44100), (174.0, 1, 44100), (123.7, 3, 44100), (60.0, 2, 48000)],
    ids=["80bpm-1bar", "87.5bpm-2bars", "174bpm-1bar", "123.7bpm-3bars", "60bpm-2bars-48k"],
)
def test_every_stem_and_the_mix_have_the_exact_loop_length(tmp_path, bpm, bars, sample_rate):
    stems, info = render_arrangement(
        arrangement(bpm, bars), RenderOptions(sample_rate=sample_rate, soundfont=TIM)
    )
    expected = round(bars * 4 * 60 / bpm * sample_rate)
    assert stems.num_samples == expected
    written = write_stems(stems, tmp_path, "lofi")
    files = [tmp_path / p for p in written["stems"].values()] + [tmp_path / written["mix"]]
    assert [soundfile.info(str(f)).frames for f in files] == [expected] * 4
    assert {soundfile.info(str(f)).samplerate for f in files} == {sample_rate}
    assert written["stems"]["bass"] == "stems/lofi_bass.wav" and written["mix"] == "lofi_mix.wav"
    assert info["renderer"] == "sample" and info["preset"] == "lofi"


def test_pitched_stems_and_the_mix_carry_the_key_as_acid_root_drums_none(tmp_path):
    """A DAW transposes a loop from its ACID root note to the project's key: bass, melody and
    mix name the key's tonic (F -> 65); drums name none, so they are never pitched."""
    stems, _ = render_arrangement(arrangement(80.0, 1), RenderOptions(soundfont=TIM))
    written = write_stems(stems, tmp_path, "lofi_80bpm_Fmin_take0a1b", root_note=65)
    roots = {role: read_acid_chunk(tmp_path / path)["root_note"] for role, path in written["stems"].items()}
    assert roots == {"drums": None, "bass": 65, "melody": 65}
    assert read_acid_chunk(tmp_path / written["mix"])["root_note"] == 65
    assert written["stems"]["bass"] == "stems/lofi_80bpm_Fmin_take0a1b_bass.wav"


@pytest.mark.parametrize("preset", ["dry", "lofi", "wobble"])
def test_one_shot_onsets_land_within_1ms_of_the_midi_time(tmp_path, one_shot_kit, preset):
    bpm = 87.5
    T = TICKS_PER_BEAT
    hits = [
        (0, 36, 120),
        (T + 77, 38, 100),
        (2 * T + 301, 36, 80),
        (3 * T + 5, 38, 127),
        (4 * T + 191, 36, 110),
        (6 * T + 240, 38, 60),
        (7 * T + 413, 36, 100),
    ]
    song = arrangement(bpm, 2, roles=("drums",), drum_notes=[])
    song.tracks["drums"].notes = [Note(t, T // 4, p, v) for t, p, v in hits]
    wobble = tmp_path / "wobble.yaml"  # the largest wow/flutter a preset may ask for, on drums
    wobble.write_text(
        "roles:\n  drums:\n    chain:\n"
        "      - wow_flutter: {wow_rate_hz: 0.9, wow_depth_ms: 0.9, flutter_depth_ms: 0.1}\n"
        "      - reverb: {room_size: 0.5, wet_level: 0.3}\n"
    )
    options = RenderOptions(
        kit=str(one_shot_kit), dry=preset == "dry", preset=str(wobble) if preset == "wobble" else "lofi"
    )
    stems, _ = render_arrangement(song, options)
    write_stems(stems, tmp_path, "lofi")  # kept in tmp_path to listen to on failure
    expected = [round(t / T * 60 / bpm * SR) for t, _, _ in hits]
    found = onsets_near(stems.stems["drums"], expected, window=int(0.01 * SR))
    errors_ms = [abs(f - e) / SR * 1000 for f, e in zip(found, expected, strict=True)]
    assert max(errors_ms) <= 1.0, errors_ms


def test_soundfont_notes_start_at_their_exact_sample_offset():
    font = read_soundfont(TIM)
    piano = font.find(0, 0)
    synth = PresetSynth(font, [piano], SR)
    alone = synth.render(piano, [NoteEvent(0, 4000, 64, 100)], 20000)
    # Offsets tinysoundfont's sequencer would round or drift on: late, odd, far into a long loop.
    for offset in (1, 4093, 44100 * 29 + 17):
        shifted = synth.render(piano, [NoteEvent(offset, offset + 4000, 64, 100)], offset + 20000)
        assert np.abs(shifted[:, :offset]).max() == 0.0
        np.testing.assert_allclose(shifted[:, offset : offset + 15000], alone[:, :15000], atol=1e-6)


def test_wrapped_tail_makes_a_seamless_loop_and_cut_fades_out(tmp_path):
    T = TICKS_PER_BEAT
    song = arrangement(120.0, 1, genre="ambient", roles=("melody",))
    song.tracks["melody"] = Track("melody", 89, False, [Note(T, 3 * T, 57, 100)])  # a pad held to the end
    wrapped, _ = render_arrangement(song, RenderOptions(soundfont=TIM, tail="wrap"))
    cut, _ = render_arrangement(song, RenderOptions(soundfont=TIM, tail="cut"))
    write_stems(wrapped, tmp_path / "wrap", "ambient")
    write_stems(cut, tmp_path / "cut", "ambient")
    pad = wrapped.stems["melody"]
    inside = np.abs(np.diff(pad, axis=1)).max()
    seam = np.abs(pad[:, 0] - pad[:, -1]).max()
    assert seam <= inside
    before_note = slice(0, int(0.4 * SR))  # beat 1, before the pad starts: only the wrapped tail rings
    assert np.abs(pad[:, before_note]).max() > 0.05 * np.abs(pad).max()
    assert np.abs(cut.stems["melody"][:, before_note]).max() == 0.0
    assert np.abs(cut.stems["melody"][:, -1]).max() < 1e-3 * np.abs(cut.stems["melody"]).max()


# --- WAV format ----------------------------------------------------------------------------


def _libsndfile_loop_info(path: Path) -> dict:
    """libsndfile's own reading of the ACID chunk (SFC_GET_LOOP_INFO): an independent reader."""
    from soundfile import _ffi, _snd

    with soundfile.SoundFile(str(path)) as handle:
        buffer = _ffi.new("char[44]")  # sizeof(SF_LOOP_INFO)
        assert _snd.sf_command(handle._file, 0x10E0, buffer, 44) == 1
        numerator, denominator, _, beats, bpm = struct.unpack("<hhiif", bytes(_ffi.buffer(buffer, 16)))
    return {"meter": [numerator, denominator], "beats": beats, "bpm": round(bpm, 4)}


def test_wav_is_24bit_stereo_with_an_acid_chunk_and_unchanged_audio(tmp_path):
    rng = np.random.default_rng(0)
    audio = (rng.uniform(-0.9, 0.9, (2, 5000))).astype(np.float32)
    audio[0, 10], audio[1, 11] = 1.7, -3.0  # out of range: must clip, not wrap around
    path = tmp_path / "loop.wav"
    write_wav_24bit_acid(path, audio, 48000, 87.5, 8)
    info = soundfile.info(str(path))
    assert (info.subtype, info.channels, info.samplerate, info.frames) == ("PCM_24", 2, 48000, 5000)
    assert read_acid_chunk(path) == {
        "bpm": 87.5,
        "beats": 8,
        "meter": [4, 4],
        "root_note": None,
        "one_shot": False,
    }
    assert _libsndfile_loop_info(path) == {"meter": [4, 4], "beats": 8, "bpm": 87.5}
    back, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    expected = np.clip(audio, -1.0, 1.0)
    assert np.abs(back.T - expected).max() <= 2.0**-23 * 1.01
    assert back[10, 0] > 0.999 and back[11, 1] == -1.0


@pytest.mark.parametrize("channels, frames", [(2, 5000), (1, 4999)], ids=["stereo", "mono-odd-length"])
def test_wav_samples_are_byte_for_byte_what_libsndfile_writes(tmp_path, channels, frames):
    """Our encoder replaces soundfile's for speed; a DAW must get the very same samples."""
    rng = np.random.default_rng(channels)
    audio = rng.normal(0.0, 0.4, (channels, frames)).astype(np.float32)
    audio[0, :8] = [1.0, -1.0, 1.7, -3.0, 1.0 - 2.0**-24, 2.0**-24, -(2.0**-24), 3 * 2.0**-25]
    ours = tmp_path / "ours.wav"
    write_wav_24bit_acid(ours, audio, 44100, 120.0, 4, root_note=57)
    theirs = tmp_path / "theirs.wav"
    soundfile.write(str(theirs), np.clip(audio, -1.0, 1.0 - 2.0**-23).T, 44100, subtype="PCM_24", format="WAV")

    def data_chunk(path: Path) -> bytes:
        riff = path.read_bytes()
        at = riff.index(b"data")
        return riff[at : at + 8 + struct.unpack("<I", riff[at + 4 : at + 8])[0]]

    assert data_chunk(ours) == data_chunk(theirs)
    assert soundfile.info(str(ours)).frames == frames
    assert len(ours.read_bytes()) % 2 == 0  # RIFF chunks are padded to even sizes


def test_acid_reader_rejects_files_without_tempo(tmp_path):
    plain = tmp_path / "plain.wav"
    soundfile.write(str(plain), np.zeros((10, 2)), SR)
    with pytest.raises(RenderError, match="no ACID chunk"):
        read_acid_chunk(plain)
    text = tmp_path / "notes.wav"
    text.write_text("hello")
    with pytest.raises(RenderError, match="not a RIFF/WAVE"):
        read_acid_chunk(text)


# --- levels and mix ------------------------------------------------------------------------


def test_mix_is_the_sum_of_stems_and_never_clips(tmp_path):
    stems, _ = render_arrangement(arrangement(100.0, 2, genre="trap"), RenderOptions(soundfont=TIM))
    written = write_stems(stems, tmp_path, "trap")
    mix, _ = soundfile.read(str(tmp_path / written["mix"]), dtype="float64", always_2d=True)
    total = sum(
        soundfile.read(str(tmp_path / p), dtype="float64", always_2d=True)[0]
        for p in written["stems"].values()
    )
    ceiling = db_to_gain(MIX_CEILING_DB)
    assert np.abs(mix - total).max() <= 4 * 2.0**-23  # 24-bit rounding of 4 files
    assert np.abs(mix).max() <= ceiling + 2.0**-23
    assert all(np.abs(s).max() <= ceiling + 1e-6 for s in stems.stems.values())
    assert np.abs(mix).max() > 0.25 * ceiling  # balanced, not buried


def test_stemset_mix_limits_a_loud_sum_to_the_ceiling():
    loud = np.full((2, 100), 0.8, dtype=np.float32)
    loud[:, 50] = -0.5
    bpm = 4 * 60 * SR / 100  # one bar of 100 samples
    stems = StemSet(SR, bpm, 1, {"a": loud, "b": loud.copy()})
    assert stems.num_samples == 100
    mix = stems.mix()
    ceiling = db_to_gain(MIX_CEILING_DB)
    assert np.isclose(np.abs(mix).max(), ceiling)
    np.testing.assert_allclose(mix, (loud + loud) * ceiling / 1.6, rtol=1e-6)
    quiet = StemSet(SR, bpm, 1, {"a": loud * 0.1, "b": loud * 0.2})
    np.testing.assert_array_equal(quiet.mix(), loud * 0.1 + loud * 0.2)


# --- presets -------------------------------------------------------------------------------


@pytest.mark.parametrize("genre", GENRES)
def test_every_genre_has_a_preset_for_every_role(genre):
    preset = load_preset(genre)
    assert set(preset.roles) == set(ROLES)
    assert all(role.chain for role in preset.roles.values())


def test_shipped_presets_are_exactly_the_genres():
    assert sorted(available_presets()) == sorted(GENRES)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roles:\n  drums:\n    levle_db: -10\n", "unknown key 'levle_db' in roles.drums"),
        ("roles:\n  melody:\n    chain:\n      - flanger: {rate_hz: 1}\n", "unknown effect 'flanger'"),
        ("roles:\n  bass:\n    chain:\n      - lowpass: {cutof_hz: 100}\n", "unknown key 'cutof_hz'"),
        ("roles:\n  bass:\n    chain:\n      - lowpass: {}\n", "needs 'cutoff_hz'"),
        ("roles:\n  vocals: {}\n", "unknown role 'vocals'"),
        ("tail_secs: 2\n", "unknown key 'tail_secs' in preset"),
        ("roles:\n  drums:\n    chain:\n      - wow_flutter: {wow_depth_ms: 3}\n", "off the grid"),
        ("roles: [\n", "not a readable YAML"),
    ],
    ids=["role-key", "effect", "effect-key", "missing-key", "role", "top-key", "wow-too-deep", "yaml"],
)
def test_bad_preset_files_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(RenderError, match=message) as caught:
        load_preset(str(path))
    assert "mine.yaml" in str(caught.value) and "\n" not in str(caught.value)


def _high_band_share(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(audio.shape[1], 1 / SR)
    return float(spectrum[freqs > 6000].sum() / spectrum.sum())


def test_lofi_preset_darkens_the_melody_and_dry_skips_it(tmp_path):
    song = arrangement(80.0, 1, roles=("melody",))
    song.tracks["melody"].program = 80  # a bright square lead
    lofi, info = render_arrangement(song, RenderOptions(soundfont=TIM))
    dry, dry_info = render_arrangement(song, RenderOptions(soundfont=TIM, dry=True))
    write_stems(lofi, tmp_path / "lofi", "lofi")
    write_stems(dry, tmp_path / "dry", "lofi")
    assert _high_band_share(lofi.stems["melody"]) < 0.5 * _high_band_share(dry.stems["melody"])
    assert info["preset"] == "lofi" and dry_info["preset"] is None


# --- kits ------------------------------------------------------------------------------------

HYDROGEN_NEW = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><name>Tiny</name><instrumentList>
 <instrument><id>0</id><name>Kick</name><volume>0.5</volume><pan>0</pan><midiOutNote>36</midiOutNote>
  <instrumentComponent><component_id>0</component_id>
   <layer><filename>soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>
   <layer><filename>hard.wav</filename><min>0.5</min><max>1</max><gain>0.8</gain></layer>
  </instrumentComponent></instrument>
 <instrument><id>1</id><name>Hat</name><volume>1</volume><pan>-1</pan><midiOutNote>42</midiOutNote>
  <instrumentComponent><layer><filename>hat.wav</filename><min>0</min><max>1</max></layer>
  </instrumentComponent></instrument>
</instrumentList></drumkit_info>"""

HYDROGEN_OLD = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><name>Old</name><instrumentList>
 <instrument><id>0</id><name>Kick</name><volume>0.5</volume><pan_L>1</pan_L><pan_R>1</pan_R>
  <layer><filename>soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>
  <layer><filename>hard.wav</filename><min>0.5</min><max>1</max><gain>0.8</gain></layer></instrument>
 <instrument><id>6</id><name>Hat</name><volume>1</volume><pan_L>1</pan_L><pan_R>0</pan_R>
  <layer><filename>hat.wav</filename><min>0</min><max>1</max></layer></instrument>
</instrumentList></drumkit_info>"""


@pytest.mark.parametrize("xml", [HYDROGEN_NEW, HYDROGEN_OLD], ids=["hydrogen-1.x", "hydrogen-0.9"])
def test_hydrogen_kit_velocity_picks_the_layer_and_scales_the_gain(tmp_path, xml):
    soft, hard, hat = click(0.05, 100, 4), click(0.08, 300, 5), click(0.02, 9000, 6)
    for name, audio in (("soft", soft), ("hard", hard), ("hat", hat)):
        write_tone(tmp_path / f"{name}.wav", audio)
    (tmp_path / "drumkit.xml").write_text(xml)
    kit = load_kit(tmp_path)
    assert kit.kind == "hydrogen" and set(kit.sounds) == {36, 42}
    out = render_drums(kit, [(100, 36, 40), (10000, 36, 120), (20000, 42, 127)], 30000, SR)
    np.testing.assert_allclose(out[0, 100 : 100 + len(soft)], soft * 0.5 * 40 / 127, atol=1e-6)
    np.testing.assert_allclose(out[1, 10000 : 10000 + len(hard)], hard * 0.5 * 0.8 * 120 / 127, atol=1e-6)
    assert np.abs(out[0, 20000 : 20000 + len(hat)]).max() > 0.5  # hat hard left
    assert np.abs(out[1, 20000 : 20000 + len(hat)]).max() == 0.0


def test_one_shot_names_map_to_drum_notes_and_order_velocity_layers(tmp_path):
    for name in ("Snare-Hard.wav", "snare-soft.wav", "808_Clap.flac", "HatClosed_2.wav", "HatClosed_1.wav"):
        write_tone(tmp_path / name, click(0.02, 200, 9))
    kit = load_kit(tmp_path)
    assert kit.kind == "oneshots" and set(kit.sounds) == {38, 39, 42}
    assert [layer.path.name for layer in kit.sounds[38].layers] == ["snare-soft.wav", "Snare-Hard.wav"]
    assert [layer.path.name for layer in kit.sounds[42].layers] == ["HatClosed_1.wav", "HatClosed_2.wav"]
    assert kit.sounds[38].layer_for(30).path.name == "snare-soft.wav"
    assert kit.sounds[38].layer_for(120).path.name == "Snare-Hard.wav"


def test_open_hat_is_choked_by_the_next_closed_hat(tmp_path):
    write_tone(tmp_path / "hat.wav", click(0.05, 8000, 7))
    write_tone(tmp_path / "openhat.wav", np.full(SR, 0.5, dtype=np.float32))
    kit = load_kit(tmp_path)
    out = render_drums(kit, [(0, 46, 127), (10000, 42, 127)], SR, SR)
    assert np.abs(out[:, 5000]).max() > 0.4  # open hat rings ...
    assert np.abs(out[:, 10000 + int(0.06 * SR) :]).max() == 0.0  # ... until the closed hat (and its own end)


def test_kit_without_a_played_note_falls_back_to_the_nearest_sound(one_shot_kit):
    song = arrangement(120.0, 1, roles=("drums",), drum_notes=[(0, 36, 100), (TICKS_PER_BEAT, 39, 100)])
    stems, info = render_arrangement(song, RenderOptions(kit=str(one_shot_kit), dry=True))
    assert any("39 (Hand Clap)" in w and "snare" in w for w in info["warnings"]), info["warnings"]
    clap_at = round(0.5 * SR)
    assert np.abs(stems.stems["drums"][:, clap_at : clap_at + 200]).max() > 0.1


def test_soundfont_drum_kit_without_a_played_note_falls_back_too():
    song = arrangement(120.0, 1, roles=("drums",), drum_notes=[(0, 36, 100), (TICKS_PER_BEAT, 95, 100)])
    stems, info = render_arrangement(song, RenderOptions(soundfont=TIM, dry=True))
    assert any("drum note 95" in w for w in info["warnings"]), info["warnings"]
    hit = round(0.5 * SR)
    assert np.abs(stems.stems["drums"][:, hit : hit + 2000]).max() > 0.01
    assert info["kit"]["kind"] == "soundfont" and "Room" in info["kit"]["name"]  # lofi's drum_program 8


# --- bad input -------------------------------------------------------------------------------


def _corrupt_font(tmp_path: Path) -> Path:
    path = tmp_path / "broken.sf2"
    path.write_bytes(b"RIFF\x00\x01\x00\x00sfbkLIST" + bytes(range(256)) * 4)
    return path


def _truncated_font(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.sf2"
    path.write_bytes(TIM.read_bytes()[:4000])
    return path


def _empty_kit(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    write_tone(tmp_path / "empty" / "vocals.wav", click(0.1, 200, 8))
    return tmp_path / "empty"


def _corrupt_one_shot(tmp_path: Path) -> Path:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "kick.wav").write_bytes(b"RIFF????WAVEjunkjunk")
    return tmp_path / "bad"


@pytest.mark.parametrize(
    ("make_options", "message"),
    [
        (lambda p: RenderOptions(soundfont=p / "missing.sf2"), "missing.sf2: file not found"),
        (lambda p: RenderOptions(soundfont=_corrupt_font(p)), "broken.sf2: corrupt SoundFont"),
        (lambda p: RenderOptions(soundfont=_truncated_font(p)), "truncated.sf2: corrupt SoundFont"),
        (lambda p: RenderOptions(soundfont=p / "notes.txt"), "notes.txt: file not found"),
        (lambda p: RenderOptions(soundfont=TIM, kit="NoSuchKit"), "--kit 'NoSuchKit'"),
        (lambda p: RenderOptions(soundfont=TIM, kit=str(_empty_kit(p))), "no drum one-shots found"),
        (lambda p: RenderOptions(soundfont=TIM, kit=str(_corrupt_one_shot(p))), "kick.wav: cannot read"),
        (lambda p: RenderOptions(soundfont=TIM, sample_rate=12345), "--sample-rate 12345"),
        (lambda p: RenderOptions(soundfont=TIM, tail="fade"), "--tail 'fade'"),
        (lambda p: RenderOptions(soundfont=TIM, preset="nope"), "--preset 'nope': not a YAML file"),
        (lambda p: RenderOptions(soundfont=TIM, instruments={"melody": "Kazoo Deluxe"}), "no preset named"),
    ],
    ids=[
        "missing-sf",
        "corrupt-sf",
        "truncated-sf",
        "not-a-file",
        "unknown-kit",
        "kit-no-oneshots",
        "corrupt-oneshot",
        "sample-rate",
        "tail",
        "preset",
        "instrument-name",
    ],
)
def test_bad_input_is_a_one_line_render_error(tmp_path, make_options, message):
    with pytest.raises(RenderError, match=message) as caught:
        render_arrangement(arrangement(), make_options(tmp_path))
    assert "\n" not in str(caught.value)


def test_a_failed_write_leaves_no_half_written_stems(tmp_path):
    good = np.zeros((2, round(4 * 60 / 120 * SR)), dtype=np.float32)
    broken = StemSet(SR, 120.0, 1, {"drums": good, "bass": good[:, :-1]})
    with pytest.raises(RenderError, match="stem 'bass'"):
        write_stems(broken, tmp_path / "run", "lofi")
    assert not (tmp_path / "run" / "stems").exists() and not list((tmp_path / "run").glob("*mix.wav"))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["bass=33"], {"bass": "33"}),
        (["melody=Electric Piano 1", "Drums=25"], {"melody": "Electric Piano 1", "drums": "25"}),
    ],
    ids=["program", "name-and-case"],
)
def test_instrument_flags_parse(values, expected):
    assert parse_instrument_flags(values) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [("bass", "ROLE=PROGRAM"), ("vocals=3", "unknown role"), ("bass=200", "0-127")],
    ids=["no-equals", "role", "range"],
)
def test_bad_instrument_flags(value, message):
    with pytest.raises(RenderError, match=message):
        parse_instrument_flags([value])


def test_instruments_override_programs_by_number_and_name():
    options = RenderOptions(soundfont=TIM, instruments={"bass": "38", "melody": "vibraphone", "drums": "25"})
    _, info = render_arrangement(arrangement(), options)
    assert info["instruments"]["bass"]["program"] == 38
    assert (info["instruments"]["melody"]["program"], info["instruments"]["melody"]["name"]) == (
        11,
        "Vibraphone",
    )
    assert info["instruments"]["drums"]["program"] == 25


# --- assets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "roles", [("melody",), ("drums",), ("bass", "melody"), ("drums", "bass")], ids=lambda r: "+".join(r)
)
def test_any_subset_of_roles_renders(roles):
    stems, info = render_arrangement(arrangement(bpm=95.0, roles=roles), RenderOptions(soundfont=TIM))
    assert list(stems.stems) == list(roles)
    assert all(s.shape == (2, stems.num_samples) and np.abs(s).max() > 0.01 for s in stems.stems.values())
    assert (info["kit"] is None) == ("drums" not in roles)


def test_tracks_without_notes_render_silent_stems_of_full_length():
    song = arrangement(roles=("drums", "melody"))
    song.tracks["melody"].notes = []
    stems, _ = render_arrangement(song, RenderOptions(soundfont=TIM))
    assert np.abs(stems.stems["melody"]).max() == 0.0 and stems.stems["melody"].shape == (
        2,
        stems.num_samples,
    )
    song.tracks["drums"].notes = []
    stems, _ = render_arrangement(song, RenderOptions(soundfont=TIM))
    assert all(np.abs(s).max() == 0.0 for s in stems.stems.values())


def test_run_info_records_assets_with_their_sha256(one_shot_kit):
    _, info = render_arrangement(arrangement(), RenderOptions(soundfont=TIM, kit=str(one_shot_kit)))
    assert info["soundfont"]["sha256"] == hashlib.sha256(TIM.read_bytes()).hexdigest()
    assert info["soundfont"]["name"] == "TimGM6mb" and info["kit"]["kind"] == "oneshots"
    assert len(info["kit"]["sha256"]) == 64 and info["instruments"]["drums"] == {"kit": "kit"}


def test_subset_soundfont_renders_like_the_whole_file():
    import tinysoundfont._tinysoundfont as tsf

    font = read_soundfont(TIM)
    piano, bass = font.find(0, 0), font.find(0, 33)
    notes = [NoteEvent(100 + 3000 * i, 2000 + 3000 * i, 48 + 5 * i, 40 + 10 * i) for i in range(8)]
    played = {piano: {(n.key, n.velocity) for n in notes}}
    synth = PresetSynth(font, [piano, bass], SR, played)
    assert len(subset_bytes(font, [piano], played)) < TIM.stat().st_size / 20
    ours = synth.render(piano, notes, 30000)
    synth.synth = tsf.SoundFont(str(TIM))
    whole = synth.render(piano, notes, 30000)
    np.testing.assert_allclose(ours, whole, atol=1e-6)


def test_find_sounds_lists_pip_soundfont_and_user_kits(tmp_path, monkeypatch, one_shot_kit):
    (tmp_path / "hydro").mkdir()
    (tmp_path / "hydro" / "drumkit.xml").write_text(HYDROGEN_NEW)
    monkeypatch.setenv("STEMFORGE_SOUNDS", str(tmp_path))
    found = {(a.name, a.kind) for a in find_sounds()}
    assert {("TimGM6mb", "soundfont"), ("kit", "kit"), ("hydro", "kit")} <= found
    write_tone(tmp_path / "hydro" / "soft.wav", click(0.05, 100, 4))
    write_tone(tmp_path / "hydro" / "hard.wav", click(0.05, 100, 4))
    write_tone(tmp_path / "hydro" / "hat.wav", click(0.05, 100, 4))
    _, info = render_arrangement(arrangement(roles=("drums",)), RenderOptions(kit="hydro"))
    assert info["kit"]["name"] == "Tiny" and info["kit"]["kind"] == "hydrogen"
