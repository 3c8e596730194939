"""One `run()` that the CLI, the service and the tests all call: conditions -> composed
MIDI (-> stems) in a run folder written to a temporary path and moved into place."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from stemforge.symbolic.arrangement import (
    TICKS_PER_BEAT,
    Arrangement,
    ArrangementError,
    Track,
    read_tracks,
    role_of_track_name,
)
from stemforge.symbolic.canonical import file_sha256
from stemforge.symbolic.compose import ComposeError, Feel, compose
from stemforge.symbolic.conditions import (
    LOOP_CHOICES,
    ROLES,
    UNLABELLED_GENRE,
    ConditionError,
    Conditions,
    build_conditions,
    nearest_known_genre,
    validate,
)
from stemforge.symbolic.errors import UserError
from stemforge.symbolic.groove import MAX_SWING_PERCENT
from stemforge.symbolic.model import Composer, load_composer
from stemforge.symbolic.paths import output_problem
from stemforge.symbolic.sampling import SamplingSettings

Progress = Callable[[str, float], None]


class RunError(UserError):
    """Bad run input; the message names the flag/file and what to do."""


@dataclass
class RunRequest:
    prompt: str = ""
    genre: str | None = None
    bpm: float | None = None
    key: str | None = None
    bars: int | None = None
    density: str | None = None
    seed: int | None = None  # None = a fresh random seed, recorded in run.json
    loop: int | None = None  # bars of the loop: 1, 2, 4; 0 = off; None = prompt or the genre's default
    chords: str | None = None  # e.g. "Am F C G" or "i VI III VII"; None = prompt or the genre's default
    swing: float | None = None  # swing in percent (50 straight, 66.7 triplet); None = the genre's groove
    quantize: bool = False  # notes exactly on the grid: no swing, micro-timing or velocity groove
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.95
    key_bias: float = 1.5
    model: Path | None = None  # None = the shipped default model
    out: Path | None = None  # None = runs_root/<time>_<genre>_<bpm>bpm
    runs_root: Path = Path("runs")
    seed_midi: Path | None = None
    from_run: Path | None = None
    keep: tuple[str, ...] = ()
    stems: bool = False
    renderer: str = "sample"  # "sample" | "musicgen"
    sample_rate: int = 44100
    soundfont: Path | None = None
    kit: str | None = None
    instruments: dict[str, str] = field(default_factory=dict)
    preset: str | None = None
    dry: bool = False
    tail: str = "wrap"
    musicgen: str | None = None  # hub id or folder, for renderer "musicgen"


@dataclass
class RunResult:
    run_dir: Path
    manifest: dict
    arrangement: Arrangement
    messages: list[str]


@lru_cache(maxsize=4)
def cached_composer(path: str | None) -> Composer:
    """Models are loaded once per process (the service reuses them across jobs)."""
    return load_composer(Path(path) if path else None)


def _read_run_json(run_dir: Path) -> dict:
    manifest_path = run_dir / "run.json"
    if not manifest_path.is_file():
        raise RunError(f"--from: {run_dir} has no run.json; point it at a folder written by `pipeline run`")
    try:
        return json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise RunError(f"--from: {manifest_path} is not valid JSON ({error.msg})") from error


def _seed_clip_tracks(path: Path) -> dict[str, Track]:
    """Every role a seed clip holds: tracks named by role (as stemforge writes them) first,
    then the roles `prepare` would find in the rest (drums on channel 10, a bass by program
    or register, the most melodic remaining line), so a multitrack file keeps its bass and
    melody too, not only its drums."""
    if not path.is_file():
        raise RunError(f"--seed-midi: {path} does not exist")
    try:
        tracks = read_tracks(path)
    except ArrangementError as error:
        raise RunError(f"--seed-midi: {path} is not a readable MIDI file") from error
    if len(tracks) < len(ROLES):
        import symusic
        from stemforge.symbolic.prepare import detect_roles

        score = symusic.Score(str(path))
        named = {i for i, t in enumerate(score.tracks) if role_of_track_name(t.name) in tracks}
        rest = [t for i, t in enumerate(score.tracks) if i not in named and not (t.is_drum and "drums" in tracks)]
        found = detect_roles(rest, TICKS_PER_BEAT / score.ticks_per_quarter)
        for role, notes in found.items():
            if role not in tracks:
                tracks[role] = Track(role, 0, role == "drums", notes)
    tracks = {r: t for r, t in tracks.items() if t.notes}
    if not tracks:
        raise RunError(f"--seed-midi: {path} has no notes")
    return tracks


def file_hashes(run_dir: Path) -> dict[str, str]:
    """Every file of a run folder but run.json itself -> its sha256."""
    return {str(p.relative_to(run_dir)): file_sha256(p) for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.relative_to(run_dir) != Path("run.json")}


def _default_run_dir(root: Path, conditions: Conditions) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / f"{stamp}_{conditions.genre}_{conditions.bpm_label}bpm"
    candidate, number = base, 2
    while candidate.exists():
        candidate, number = base.with_name(f"{base.name}-{number}"), number + 1
    return candidate


def _check_out_dir(out: Path) -> None:
    problem = output_problem(out)
    if problem:
        raise RunError(f"--out: {problem}")


def request_conditions(request: RunRequest, previous: dict | None, seed: int, notes: list[str] | None = None,
                       max_bars: int | None = None) -> Conditions:
    """What a request composes: the earlier run's conditions (`previous` run.json, for --from
    and regenerate), then the prompt, then the flags. The one derivation `run` and the
    service's check before queueing share, so a request is judged as it will be composed
    (a regenerate whose prompt says "16 bars" is 16 bars to both)."""
    base = Conditions.from_dict(previous["conditions"]) if previous else None
    return build_conditions(
        request.prompt, genre=request.genre, bpm=request.bpm, key=request.key, bars=request.bars,
        density=request.density, seed=seed, max_bars=max_bars, notes=notes, base=base, loop=request.loop,
        chords=request.chords,
    )


def run(request: RunRequest, progress: Progress | None = None, composer: Composer | None = None) -> RunResult:
    report = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}
    messages: list[str] = []
    started = time.perf_counter()
    settings = SamplingSettings(request.temperature, request.top_k, request.top_p, request.key_bias)
    try:
        settings.validate()
    except UserError as error:
        raise RunError(str(error)) from error
    if request.swing is not None and not 50.0 <= request.swing <= MAX_SWING_PERCENT:
        raise RunError(f"--swing: {request.swing:g} is not a swing; use 50 (straight) to {MAX_SWING_PERCENT:g} "
                       "(66.7 is triplet)")
    if request.loop is not None and request.loop not in LOOP_CHOICES:
        raise RunError(f"--loop: {request.loop} is not a loop length; use 1, 2, 4 or off")

    # -- inputs checked before anything slow happens
    previous = _read_run_json(request.from_run) if request.from_run else None
    kept_tracks: dict[str, Track] = {}
    for role in request.keep:
        if role not in ROLES:
            raise RunError(f"--keep: unknown role {role!r}; roles are {', '.join(ROLES)}")
    if request.keep and previous is None:
        raise RunError("--keep needs --from RUN_DIR (the run whose parts to keep)")
    if set(request.keep) >= set(ROLES):
        raise RunError("--keep: keeping every role leaves nothing to regenerate; keep fewer roles")
    if previous is not None:
        for role in request.keep:
            relative = previous.get("midi", {}).get(role)
            if not relative or not (request.from_run / relative).is_file():
                raise RunError(f"--keep: the run {request.from_run} has no {role} part "
                               f"(it has {', '.join(r for r in previous.get('midi', {}) if r != 'full')})")
            kept_tracks[role] = read_tracks(request.from_run / relative)[role]
    seed_tracks = _seed_clip_tracks(request.seed_midi) if request.seed_midi else {}
    if seed_tracks:
        generated = [r for r in ROLES if r not in seed_tracks and r not in request.keep]
        messages.append(f"seed clip: kept {', '.join(r for r in ROLES if r in seed_tracks)}"
                        + (f"; generating {', '.join(generated)}" if generated else ""))
    if request.out is not None:
        _check_out_dir(request.out)
    if request.stems:
        check_render_request(request)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    try:  # before the model loads (10-30 s on a busy machine): a bad bpm or key fails at once
        conditions = request_conditions(request, previous, seed, messages)
    except ConditionError as error:
        raise RunError(str(error)) from error

    composer_key = str(request.model) if request.model else None
    if composer is None:
        composer = cached_composer(composer_key)
    timings["load"] = time.perf_counter() - started
    report("loaded model", 0.05)
    try:
        validate(conditions, composer.max_bars)
    except ConditionError as error:
        raise RunError(str(error)) from error
    model_genre = nearest_known_genre(conditions.genre, composer.genres)
    if model_genre == UNLABELLED_GENRE:
        messages.append(f"genre '{conditions.genre}' is not in this model; composing from its material without a "
                        "genre label (label files by folder or metadata CSV when preparing to steer the genre)")
    elif model_genre != conditions.genre:
        messages.append(f"genre '{conditions.genre}' is not in this model; using the nearest known genre "
                        f"'{model_genre}'")
    if model_genre in composer.meta.get("genres_without_training_windows", []):
        messages.append(f"genre '{model_genre}' had no training windows when this model was trained (all its "
                        "files were in validation, see the data's prepare_report.md): the model knows the name, "
                        "not the music")

    compose_started = time.perf_counter()
    expected = max(1, conditions.bars * 90)
    counter = {"n": 0}

    def on_token(_: int) -> None:
        counter["n"] += 1
        if counter["n"] % 64 == 0:
            report("composing", 0.05 + 0.5 * min(1.0, counter["n"] / expected))

    try:
        composed = compose(composer, conditions, settings, seed, model_genre=model_genre, kept=kept_tracks,
                           seed_clip=seed_tracks, feel=Feel(request.quantize, request.swing), on_token=on_token)
    except ComposeError as error:
        raise RunError(str(error)) from error
    timings["compose"] = time.perf_counter() - compose_started
    arrangement, ids, composition, feel = composed.arrangement, composed.token_ids, composed.composition, composed.feel
    stats = composed.stats
    report("composed", 0.55)

    run_dir = request.out or _default_run_dir(request.runs_root, conditions)
    _check_out_dir(run_dir)
    tmp = run_dir.with_name(f".{run_dir.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
        manifest = _write_symbolic(tmp, arrangement, request, composer, model_genre, seed, settings, ids)
        manifest["structure"] = {**composition.to_dict(), "chords": conditions.chords}
        manifest["feel"] = feel
        manifest["tokens_sampled"], manifest["tokens_forced"] = stats.sampled, stats.forced
        if request.stems:
            render_started = time.perf_counter()
            manifest.update(render_into(tmp, arrangement, request, report))
            timings["render"] = time.perf_counter() - render_started
        manifest["files"] = file_hashes(tmp)
        timings["total"] = time.perf_counter() - started
        manifest["timings"] = {k: round(v, 3) for k, v in timings.items()}
        manifest["messages"] = messages
        (tmp / "run.json").write_text(json.dumps(manifest, indent=1))
        try:
            tmp.rename(run_dir)
        except OSError as error:
            if run_dir.exists():  # another run with the same --out finished first
                raise RunError(f"--out: {run_dir} was created by another run while this one composed; this "
                               "run is not kept; choose another folder") from error
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report("done", 1.0)
    return RunResult(run_dir, manifest, arrangement, messages)


def _write_symbolic(directory: Path, arrangement: Arrangement, request: RunRequest, composer: Composer,
                    model_genre: str, seed: int, settings: SamplingSettings, ids: list[int]) -> dict:
    arrangement.write_midi(directory / "full.mid")
    midi = {}
    for role in arrangement.tracks:
        arrangement.write_midi(directory / "midi" / f"{role}.mid", roles=(role,))
        midi[role] = f"midi/{role}.mid"
    midi["full"] = "full.mid"
    return {
        "stemforge": 1,
        "prompt": request.prompt,
        "conditions": arrangement.conditions.to_dict(),
        "model_genre": model_genre,
        "seed": seed,
        "sampling": {"temperature": settings.temperature, "top_k": settings.top_k, "top_p": settings.top_p,
                     "key_bias": settings.key_bias},
        "model": {"path": str(composer.path), "sha256": composer.weights_sha256,
                  "data_sha256": composer.meta.get("data_sha256")},
        "context": {"seed_midi": str(request.seed_midi) if request.seed_midi else None,
                    "from": str(request.from_run) if request.from_run else None, "keep": list(request.keep)},
        "tokens": len(ids),
        "token_ids": ids,  # the piece on the token grid, before the feel: what novelty checks compare
        "midi": midi,
    }


def render_options(request: RunRequest):
    from stemforge.audio.render import RenderOptions

    return RenderOptions(
        sample_rate=request.sample_rate, soundfont=request.soundfont, kit=request.kit,
        instruments=dict(request.instruments), preset=request.preset, dry=request.dry, tail=request.tail,
    )


def check_render_request(request: RunRequest) -> None:
    """The render flags of a request, before composing: renderer, sample rate, preset,
    SoundFont, kit, instruments, and for MusicGen that weights are named."""
    from stemforge.audio.render import RenderError, check_render_options

    if request.renderer not in ("sample", "musicgen"):
        raise RunError(f"--renderer: unknown renderer {request.renderer!r}; use sample or musicgen")
    if request.renderer == "musicgen" and not request.musicgen:
        raise RunError("--musicgen: name a hub id or a local folder for --renderer musicgen")
    try:
        check_render_options(render_options(request))
    except RenderError as error:
        raise RunError(str(error)) from error


def render_into(directory: Path, arrangement: Arrangement, request: RunRequest,
                progress: Progress | None = None) -> dict:
    """Render stems into `directory`; returns the run.json fields the renderer adds."""
    from stemforge.audio.render import render_arrangement, write_stems

    stems, info = render_arrangement(arrangement, render_options(request), progress)
    if request.renderer == "musicgen":
        from stemforge.audio.musicgen import MusicGenOptions, render_musicgen

        if not request.musicgen:
            raise RunError("--musicgen: name a hub id or a local folder for --renderer musicgen")
        report = progress or (lambda stage, fraction: None)
        stems, musicgen_info = render_musicgen(
            arrangement,
            MusicGenOptions(model=request.musicgen, sample_rate=request.sample_rate,
                            seed=arrangement.conditions.seed),
            stems, lambda message: report(message, 0.6),
        )
        # the sample renderer's sounds still matter: they rendered the conditioning melody
        info = {**info, **musicgen_info}
    elif request.renderer != "sample":
        raise RunError(f"--renderer: unknown renderer {request.renderer!r}; use sample or musicgen")
    files = write_stems(stems, directory, arrangement.conditions.genre)
    return {**info, **files}


def arrangement_from_run(run_dir: Path) -> tuple[Arrangement, dict]:
    manifest = _read_run_json(run_dir)
    conditions = Conditions.from_dict(manifest["conditions"])
    tracks: dict[str, Track] = {}
    for role, relative in manifest["midi"].items():
        if role != "full":
            tracks.update(read_tracks(run_dir / relative))
    return Arrangement(conditions, tracks), manifest


def render_run(run_dir: Path, request: RunRequest, out: Path | None = None) -> Path:
    """`pipeline render`: new stems for an existing run's MIDI, without recomposing.

    With `out`, the run is copied there with its new stems; without, the run folder is
    re-rendered in place only when it has no stems yet (stems are never silently replaced).
    """
    check_render_request(request)
    arrangement, manifest = arrangement_from_run(run_dir)
    target = out or run_dir
    if out is not None:
        _check_out_dir(out)
    elif manifest.get("stems"):
        raise RunError(f"RUN_DIR: {run_dir} already has stems; pass --out NEW_DIR to render a copy")
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(run_dir, tmp, ignore=shutil.ignore_patterns("stems", "mix.wav"))
        started = time.perf_counter()
        manifest.update(render_into(tmp, arrangement, request))
        manifest.setdefault("timings", {})["render"] = round(time.perf_counter() - started, 3)
        manifest["files"] = file_hashes(tmp)
        (tmp / "run.json").write_text(json.dumps(manifest, indent=1))
        if out is None:
            backup = run_dir.with_name(f".{run_dir.name}.old-{os.getpid()}")
            run_dir.rename(backup)
            tmp.rename(run_dir)
            shutil.rmtree(backup)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target

