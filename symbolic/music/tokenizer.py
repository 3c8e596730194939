"""Tokens: miditok MMM (REMI inside each track) plus a prefix of condition tokens.

A sequence is
    BOS Genre_x BPM_y Key_z Density_d Bars_n  (Track_Start Program_p Bar ... Track_End)+  EOS
Each track is one role (Program_-1 drums, Program_33 bass, Program_0 melody: the program
token names the role; the GM program written to MIDI is chosen per genre at output time)
and holds exactly `n` Bar tokens. Tracks are independent streams, so any subset can be
given as context and the rest generated after it ("regenerate the bass").

Why MMM over REMI+programs (bench/tokens.py, docs/tokens.md): both round-trip notes
exactly on our grid, MMM is ~16% shorter, and only a track-by-track layout lets a kept
track be a prefix. Drum notes carry no Duration token (they are one-shots).
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

import symusic

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.ticks import BEATS_PER_BAR, TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Note, Track, without_overlaps
from stemforge.symbolic.music.conditions import DENSITIES, ROLES
from stemforge.symbolic.music.keys import KEY_NAMES, Key, parse_key


def _offline_hub() -> types.ModuleType:
    """What miditok's tokenizer module takes from huggingface_hub at import: the hub mixin
    its tokenizer class inherits (for push_to_hub / from_pretrained) and `hf_hub_download`.
    stemforge never loads a tokenizer from the hub (a model folder carries its own
    tokenizer.json), and importing huggingface_hub's API client costs ~0.19 s of a cold run
    (httpx, its file cache): more than 5% of `import torch`, the cold start's yardstick."""
    hub = types.ModuleType("huggingface_hub")

    class ModelHubMixin:
        pass

    def hf_hub_download(*args: object, **kwargs: object) -> str:
        raise RuntimeError("stemforge imports miditok without the Hugging Face hub; load tokenizers from files")

    hub.ModelHubMixin, hub.hf_hub_download = ModelHubMixin, hf_hub_download
    return hub


def _import_miditok() -> types.ModuleType:
    """miditok without its torch datasets and without the Hugging Face hub client.

    Its package __init__ imports `miditok.pytorch_data` (and so torch, 1.5-2 s) whenever
    torch is installed, inside a try that falls back on ImportError; composing uses only the
    tokenizer. A None entry in sys.modules makes that one import raise ImportError (the
    import system's documented way to block a module). huggingface_hub stands in as
    `_offline_hub()` while miditok loads, unless something imported the real one already.
    Both entries are removed afterwards, so `import miditok.pytorch_data` and
    `import huggingface_hub` (transformers, MusicGen) still get the real modules later."""
    stand_ins: dict[str, types.ModuleType | None] = {}
    if "miditok" not in sys.modules:
        if "miditok.pytorch_data" not in sys.modules:
            stand_ins["miditok.pytorch_data"] = None
        if "huggingface_hub" not in sys.modules:
            stand_ins["huggingface_hub"] = _offline_hub()
    sys.modules.update(stand_ins)
    try:
        import miditok
    finally:
        for name in stand_ins:
            del sys.modules[name]
    return miditok


_miditok = _import_miditok()
MMM, TokenizerConfig = _miditok.MMM, _miditok.TokenizerConfig

ROLE_PROGRAMS: dict[str, int] = {"drums": -1, "bass": 33, "melody": 0}
PROGRAM_ROLES: dict[int, str] = {p: r for r, p in ROLE_PROGRAMS.items()}
BPM_BUCKET_EDGES: tuple[int, ...] = (60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180)
NO_KEY = "none"


class TokenizerError(UserError):
    pass


def bpm_bucket(bpm: float) -> int:
    """Lower edge of the tempo bucket (0 below 60)."""
    lower = 0
    for edge in BPM_BUCKET_EDGES:
        if bpm >= edge:
            lower = edge
    return lower


def key_token_value(key: str | None) -> str:
    if not key or key == NO_KEY:
        return NO_KEY
    parsed: Key = parse_key(key)
    return KEY_NAMES[parsed.tonic] + ("m" if parsed.mode == "minor" else "")


@dataclass
class TokenizerSpec:
    """Everything needed to rebuild the vocabulary; saved as tokenizer.json."""

    genres: list[str]
    max_bars: int = 16
    grid_per_beat: int = 12
    num_velocities: int = 8
    max_duration_beats: int = 4
    pitch_range: tuple[int, int] = (21, 109)
    role_pitch_ranges: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {"bass": (24, 67), "melody": (36, 103), "drums": (27, 88)}
    )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"kind": "stemforge-tokenizer", **asdict(self)}, indent=1))

    @classmethod
    def load(cls, path: Path) -> TokenizerSpec:
        data = json.loads(path.read_text())
        if data.pop("kind", None) != "stemforge-tokenizer":
            raise TokenizerError(f"{path}: not a stemforge tokenizer file")
        data["pitch_range"] = tuple(data["pitch_range"])
        data["role_pitch_ranges"] = {k: tuple(v) for k, v in data["role_pitch_ranges"].items()}
        return cls(**data)


class ComposerTokenizer:
    def __init__(self, spec: TokenizerSpec) -> None:
        self.spec = spec
        condition_tokens = (
            [f"Genre_{g}" for g in spec.genres]
            + [f"BPM_{b}" for b in (0, *BPM_BUCKET_EDGES)]
            + [f"Key_{name}{suffix}" for name in KEY_NAMES for suffix in ("", "m")]
            + [f"Key_{NO_KEY}"]
            + [f"Density_{d}" for d in DENSITIES]
            + [f"Bars_{n}" for n in range(1, spec.max_bars + 1)]
        )
        config = TokenizerConfig(
            base_tokenizer="REMI",
            use_programs=True,
            programs=sorted(ROLE_PROGRAMS.values()),
            use_pitchdrum_tokens=True,
            beat_res={(0, spec.max_duration_beats): spec.grid_per_beat},
            num_velocities=spec.num_velocities,
            pitch_range=spec.pitch_range,
            special_tokens=["PAD", "BOS", "EOS", *condition_tokens],
            use_tempos=False,
            use_time_signatures=False,
            # drums are one-shots: no Duration token saves ~25% of the tokens of a groove
            use_note_duration_programs=[p for p in ROLE_PROGRAMS.values() if p >= 0],
        )
        self.miditok = MMM(config)
        self.vocab: dict[str, int] = dict(self.miditok.vocab)
        self.id_to_token: list[str] = [""] * len(self.vocab)
        for token, index in self.vocab.items():
            self.id_to_token[index] = token
        self.pad_id = self.vocab["PAD_None"]
        self.bos_id = self.vocab["BOS_None"]
        self.eos_id = self.vocab["EOS_None"]
        self.track_start_id = self.vocab["Track_Start"]
        self.track_end_id = self.vocab["Track_End"]
        self.bar_id = self.vocab["Bar_None"]
        self.ticks_per_bar_grid = spec.grid_per_beat * BEATS_PER_BAR

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def genres(self) -> list[str]:
        return list(self.spec.genres)

    def save(self, path: Path) -> None:
        self.spec.save(path)

    @classmethod
    def load(cls, path: Path) -> ComposerTokenizer:
        return cls(TokenizerSpec.load(path))

    def prefix_ids(self, genre: str, bpm: float, key: str | None, density: str, bars: int) -> list[int]:
        if f"Genre_{genre}" not in self.vocab:
            raise TokenizerError(f"genre: {genre!r} is not in this model's vocabulary")
        if not 1 <= bars <= self.spec.max_bars:
            raise TokenizerError(f"bars: {bars} is outside this model's 1-{self.spec.max_bars}")
        tokens = [
            "BOS_None", f"Genre_{genre}", f"BPM_{bpm_bucket(bpm)}", f"Key_{key_token_value(key)}",
            f"Density_{density}", f"Bars_{bars}",
        ]
        return [self.vocab[t] for t in tokens]

    def encode_track(self, track: Track, ticks_per_beat: int, bars: int, bars_kept: int | None = None) -> list[int]:
        """Track_Start Program Bar... [Track_End]: exactly `bars` Bar tokens and a Track_End,
        or, with `bars_kept`, only the first `bars_kept` bars and no Track_End (a prefix to
        continue from)."""
        program = ROLE_PROGRAMS[track.role]
        kept_bars = bars if bars_kept is None else bars_kept
        end_tick = kept_bars * BEATS_PER_BAR * ticks_per_beat
        score = symusic.Score(ticks_per_beat)
        out = symusic.Track(program=max(program, 0), is_drum=track.role == "drums")
        for note in track.notes:
            if note.start >= end_tick:
                continue
            duration = min(note.duration, end_tick - note.start)
            out.notes.append(symusic.Note(note.start, max(1, duration), note.pitch, note.velocity))
        if len(out.notes) == 0:
            body = ["Track_Start", f"Program_{program}"]
        else:
            score.tracks.append(out)
            body = list(self.miditok.encode(score).tokens)[:-1]  # drop Track_End
        bar_count = body.count("Bar_None")
        if bar_count > kept_bars:  # a quantized onset landed on the end boundary
            cut = [i for i, t in enumerate(body) if t == "Bar_None"][kept_bars]
            body = body[:cut]
            bar_count = kept_bars
        body += ["Bar_None"] * (kept_bars - bar_count)
        if bars_kept is None:
            body.append("Track_End")
        return [self.vocab[t] for t in body]

    def encode(
        self,
        tracks: dict[str, Track],
        ticks_per_beat: int,
        *,
        genre: str,
        bpm: float,
        key: str | None,
        density: str,
        bars: int,
        role_order: tuple[str, ...] = ROLES,
    ) -> list[int]:
        ids = self.prefix_ids(genre, bpm, key, density, bars)
        for role in role_order:
            if role in tracks:
                ids += self.encode_track(tracks[role], ticks_per_beat, bars)
        return ids + [self.eos_id]

    def split_tracks(self, ids: list[int]) -> list[list[int]]:
        """Track segments (Track_Start .. Track_End inclusive) of a sequence."""
        segments, current = [], None
        for token in ids:
            if token == self.track_start_id:
                current = [token]
            elif current is not None:
                current.append(token)
                if token == self.track_end_id:
                    segments.append(current)
                    current = None
        return segments

    def decode_tracks(self, ids: list[int], ticks_per_beat: int = TICKS_PER_BEAT) -> dict[str, Track]:
        """role -> Track at `ticks_per_beat` for every complete track in the sequence.
        Drum hits get a 16th-note duration, cut at the end of the last bar (and at the next
        hit of the same drum); no two notes of one pitch overlap."""
        tracks: dict[str, Track] = {}
        scale = ticks_per_beat // self.spec.grid_per_beat
        for segment in self.split_tracks(ids):
            program = int(self.id_to_token[segment[1]].split("_")[1])
            role = PROGRAM_ROLES[program]
            end = segment.count(self.bar_id) * BEATS_PER_BAR * ticks_per_beat
            score = self.miditok.decode(segment)
            notes = []
            for source in score.tracks:
                for n in source.notes:
                    start = n.time * scale
                    duration = ticks_per_beat // 4 if role == "drums" else n.duration * scale
                    notes.append(Note(start, min(duration, end - start), n.pitch, n.velocity))
            tracks[role] = Track(role, max(program, 0), role == "drums", without_overlaps(notes))
        return tracks
