"""One `run()` that the CLI, the service and the tests all call: conditions -> composed
MIDI (-> stems) in a run folder written to a temporary path and moved into place."""

from __future__ import annotations

import dataclasses
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from stemforge.pipeline.exports import TakeFolder, finish_takes
from stemforge.pipeline.renderers import renderer_named
from stemforge.pipeline.request import RunError, RunRequest
from stemforge.pipeline.run_folder import arrangement_from_run
from stemforge.symbolic.core.paths import (
    FolderExistsError,
    atomic_folder,
    output_problem,
    remove_stale_partials,
)
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import (
    Arrangement,
    ArrangementError,
    Track,
    read_tracks,
    role_of_track_name,
)
from stemforge.symbolic.music.conditions import (
    MAX_SEED,
    ROLES,
    Conditions,
    build_conditions,
    model_genre_for,
    parse_prompt,
    validate,
)
from stemforge.symbolic.runtime.run_manifest import (
    FULL_MIDI,
    ContextRecord,
    ModelRecord,
    RunManifest,
    SamplingRecord,
    TakeRecord,
    acid_root_note,
    file_name_base,
)
from stemforge.symbolic.runtime.sections import with_form

if TYPE_CHECKING:  # librosa (--like) and the composer load only where they are used
    from stemforge.audio.loop_analysis import LoopEstimate
    from stemforge.audio.stems import StemSet
    from stemforge.symbolic.decoding.model import Composer
    from stemforge.symbolic.runtime.compose import Composed, PieceOrder
    from stemforge.symbolic.runtime.sampling_settings import SamplingSettings

Progress = Callable[[str, float], None]


__all__ = ["RunError", "RunRequest", "RunResult", "check_inputs", "render_run", "run", "run_together"]


@dataclass
class RunResult:
    """One run folder. With --takes N, `run` returns take 1's and `takes` holds all N
    (each in its own folder take1..takeN of the run folder)."""

    run_dir: Path
    manifest: RunManifest
    arrangement: Arrangement
    messages: list[str]
    takes: list[RunResult] = field(default_factory=list)


@lru_cache(maxsize=4)
def cached_composer(path: str | None) -> Composer:
    """Models are loaded once per process (the service reuses them across jobs)."""
    from stemforge.symbolic.decoding.model import load_composer

    return load_composer(Path(path) if path else None)


def _seed_clip_tracks(path: Path, messages: list[str] | None = None) -> dict[str, Track]:
    """Every role a seed clip holds: tracks named by role (as stemforge writes them) first,
    then the roles `prepare` would find in the rest (drums on channel 10, a bass by program
    or register, the most melodic remaining line), so a multitrack file keeps its bass and
    melody too, not only its drums."""
    if not path.is_file():
        raise RunError(f"--seed-midi: {path} does not exist")
    try:
        tracks = read_tracks(path)
    except ArrangementError as error:
        raise RunError(f"--seed-midi: {str(error).splitlines()[0]}") from error
    if len(tracks) < len(ROLES):
        import symusic

        from stemforge.symbolic.music.roles import detect_roles

        score = symusic.Score(str(path))
        named = {i for i, t in enumerate(score.tracks) if role_of_track_name(t.name) in tracks}
        rest = [t for i, t in enumerate(score.tracks) if i not in named and not (t.is_drum and "drums" in tracks)]
        found = detect_roles(rest, TICKS_PER_BEAT / score.ticks_per_quarter)
        for role, notes in found.items():
            if role not in tracks:
                tracks[role] = Track(role, 0, role == "drums", notes)
    if "drums" in tracks:  # read through the one drum map, as prepare reads training files
        from stemforge.symbolic.music.drum_map import map_drum_notes
        from stemforge.symbolic.music.tokenizer import TokenizerSpec

        notes, mapped, dropped = map_drum_notes(tracks["drums"].notes, *TokenizerSpec([]).role_pitch_ranges["drums"])
        tracks["drums"] = dataclasses.replace(tracks["drums"], notes=notes)
        if messages is not None and (mapped or dropped):
            counts = lambda c: ", ".join(f"{p} x{n}" for p, n in sorted(c.items()))  # noqa: E731
            said = [f"drum notes {counts(mapped)} read as General MIDI drums"] if mapped else []
            said += [f"drum notes {counts(dropped)} dropped (no drum the model holds)"] if dropped else []
            messages.append("seed clip: " + "; ".join(said))
    tracks = {r: t for r, t in tracks.items() if t.notes}
    if not tracks:
        raise RunError(f"--seed-midi: {path} has no notes")
    return tracks


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
        raise RunError(f"--out: {problem}", field="out")


def request_conditions(request: RunRequest, previous: RunManifest | None, seed: int,
                       notes: list[str] | None = None, loop: LoopEstimate | None = None,
                       prompted: dict | None = None) -> Conditions:
    """What a request composes: the earlier run's conditions (--from, regenerate), then a
    reference loop's tempo and key (--like), then the prompt (`prompted`: what
    `parse_prompt` found in it, when the caller has it already), then the flags."""
    bpm, key = request.bpm, request.key
    if loop is not None:
        prompted = parse_prompt(request.prompt) if prompted is None else prompted
        if bpm is None and "bpm" not in prompted and loop.bpm is not None:
            bpm = loop.bpm
        named_harmony = "key" in prompted or "chords" in prompted or request.chords is not None
        if key is None and not named_harmony and loop.key is not None:
            key = loop.key
        if notes is not None:
            notes.append(f"reference loop {loop.describe()}; composing at {bpm if bpm is not None else 'the prompt'}"
                         f"{' bpm' if bpm is not None else ''}{f', {key}' if key else ''}")
    conditions = build_conditions(
        request.prompt, genre=request.genre, bpm=bpm, key=key, bars=request.bars,
        density=request.density, seed=seed, notes=notes, base=previous.conditions if previous else None,
        loop=request.loop, chords=request.chords,
    )
    prompted = parse_prompt(request.prompt) if prompted is None else prompted
    bars_named = request.bars is not None or "bars" in prompted
    inherited = previous.conditions.form if previous and not bars_named and not request.form else ""
    return with_form(conditions, request.form, bars_named, inherited, notes)


@dataclass
class CheckedInputs:
    """A request checked against its files, folders and earlier run: what `run` needs
    before the model loads."""

    conditions: Conditions
    takes: list[tuple[Conditions, int]]  # (conditions, seed) of every take; the first is `conditions`
    kept_tracks: dict[str, Track]
    seed_tracks: dict[str, Track]
    messages: list[str]


def check_inputs(request: RunRequest) -> CheckedInputs:
    """Every check of a request before anything slow (the model loads in 10-30 s on a busy
    machine): the request's own rules, the earlier run and its kept parts, the seed clip, the
    output folder, the render flags and files, and the conditions the prompt and flags make.
    `run` calls it, and the service calls it before it queues a job, so both judge a request
    the same way (a regenerate whose prompt says "16 bars" is 16 bars to both)."""
    request.check()
    previous = RunManifest.read(request.from_run, "--from") if request.from_run else None
    kept_tracks: dict[str, Track] = {}
    for role in request.keep:
        path = previous.midi_path(role, request.from_run)
        if path is None or not path.is_file():
            raise RunError(f"--keep: the earlier run has no {role} part (it has {', '.join(previous.parts())})",
                           field="keep")
        kept_tracks[role] = read_tracks(path)[role]
    messages: list[str] = []
    seed_tracks = _seed_clip_tracks(request.seed_midi, messages) if request.seed_midi else {}
    if seed_tracks:
        generated = [r for r in ROLES if r not in seed_tracks and r not in request.keep]
        messages.append(f"seed clip: kept {', '.join(r for r in ROLES if r in seed_tracks)}"
                        + (f"; generating {', '.join(generated)}" if generated else ""))
    if request.out is not None:
        _check_out_dir(request.out)
    if request.stems:
        note = check_render_request(request)
        if note:
            messages.append(note)
    loop, prompted = None, None
    if request.like is not None:  # librosa loads only here: a run without --like does not pay for it
        from stemforge.audio.loop_analysis import estimate_loop

        prompted = parse_prompt(request.prompt)
        loop = estimate_loop(request.like, require_beat=request.bpm is None and "bpm" not in prompted)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    conditions = request_conditions(request, previous, seed, messages, loop, prompted)
    if request.section_loops and not conditions.form:
        raise RunError(f"--section-loops: this piece is one loop of {conditions.bars} bars, with no sections; ask "
                       "for a form (--form, or more than 16 bars)", field="section_loops")
    # takes are variations on one idea: the first take's key, tempo and chords, each its own seed
    take_seeds = [(seed + n) % (MAX_SEED + 1) for n in range(request.takes)]
    takes = [(dataclasses.replace(conditions, seed=take_seed), take_seed) for take_seed in take_seeds]
    return CheckedInputs(conditions, takes, kept_tracks, seed_tracks, messages)


@dataclass
class _Started:
    """A request checked and its model genre found: what composing and writing it need."""

    request: RunRequest
    inputs: CheckedInputs
    settings: SamplingSettings
    model_genre: str
    report: Progress
    started: float
    timings: dict[str, float]

    @property
    def joins_others(self) -> bool:
        """Whether it may compose in one batch with other requests (`run_together`): one
        batch shares its context parts, so a request with kept parts or a seed clip composes
        alone."""
        return not self.inputs.kept_tracks and not self.inputs.seed_tracks

    def orders(self) -> list[PieceOrder]:
        from stemforge.symbolic.runtime.compose import Feel, PieceOrder

        feel = Feel(self.request.quantize, self.request.swing)
        return [PieceOrder(conditions, seed, self.model_genre, feel) for conditions, seed in self.inputs.takes]


def run(request: RunRequest, progress: Progress | None = None, composer: Composer | None = None) -> RunResult:
    job, composer = _start(request, progress, composer)
    return _write(job, composer, _compose([job], composer)[0])


def run_together(requests: list[RunRequest], progresses: list[Progress | None], composer: Composer,
                 finished: Callable[[int, RunResult | Exception], None] | None = None) -> list[RunResult | Exception]:
    """Several requests (a service worker's queued jobs) as `run` would make them one by one,
    with their pieces composed in one batched pass (`compose_pieces`): each comes out byte for
    byte as it does alone, in less time than one after the other. Returns a result or the
    error per request, in order: one request's bad input or failure is its own. `finished`
    hears of each request as soon as its folder is in place (request number, outcome), so a
    job's client need not wait for the renders of the jobs composed beside it."""
    outcomes: list[RunResult | Exception | None] = [None] * len(requests)

    def settle(number: int, outcome: RunResult | Exception) -> None:
        outcomes[number] = outcome
        if finished is not None:
            finished(number, outcome)

    jobs: dict[int, _Started] = {}
    for number, (request, progress) in enumerate(zip(requests, progresses, strict=True)):
        try:
            jobs[number] = _start(request, progress, composer)[0]
        except Exception as error:  # noqa: BLE001 - the caller reports it as this request's
            settle(number, error)
    batches: dict[object, list[int]] = {}
    for number, job in jobs.items():
        batches.setdefault(job.settings if job.joins_others else ("alone", number), []).append(number)
    for members in batches.values():
        try:
            composed: list[list[Composed] | None] = list(_compose([jobs[n] for n in members], composer))
        except Exception as error:  # noqa: BLE001 - composed again one by one, the error goes to its own job
            if len(members) == 1:
                settle(members[0], error)
                continue
            composed = []
            for number in members:
                try:
                    composed.append(_compose([jobs[number]], composer)[0])
                except Exception as own_error:  # noqa: BLE001
                    settle(number, own_error)
                    composed.append(None)
        for number, takes in zip(members, composed, strict=True):
            if takes is not None:
                try:
                    settle(number, _write(jobs[number], composer, takes))
                except Exception as error:  # noqa: BLE001
                    settle(number, error)
    return outcomes  # type: ignore[return-value] - every request has its outcome by now


def _start(request: RunRequest, progress: Progress | None, composer: Composer | None) -> tuple[_Started, Composer]:
    report = progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    inputs = check_inputs(request)
    conditions, messages = inputs.conditions, inputs.messages
    settings = request.sampling_settings()

    if composer is None:
        composer = cached_composer(str(request.model) if request.model else None)
    timings["load"] = time.perf_counter() - started
    report("loaded model", 0.05)
    validate(conditions, composer.max_bars)
    model_genre, note = model_genre_for(conditions.genre, composer.genres, composer.genre_windows)
    if note:
        messages.append(note)

    return _Started(request, inputs, settings, model_genre, report, started, timings), composer


def _compose(jobs: list[_Started], composer: Composer) -> list[list[Composed]]:
    """The pieces of `jobs` (their takes) in one `compose_pieces` call; each job's list of
    takes. Jobs composed together share no context parts (`_Started.joins_others`)."""
    from stemforge.symbolic.runtime.compose import compose_pieces  # loaded only by a run that composes

    expected = max(1, sum(job.inputs.conditions.bars * 90 * len(job.inputs.takes) for job in jobs))
    counter = {"n": 0}

    def on_token(_: int) -> None:
        counter["n"] += 1
        if counter["n"] % 64 == 0:
            for job in jobs:
                job.report("composing", 0.05 + 0.5 * min(1.0, counter["n"] / expected))

    for job in jobs:  # at once, not only after the first 64 tokens (a 1-bar piece may have fewer)
        job.report("composing", 0.05)
    compose_started = time.perf_counter()
    composed = compose_pieces(composer, [order for job in jobs for order in job.orders()], jobs[0].settings,
                              kept=jobs[0].inputs.kept_tracks, seed_clip=jobs[0].inputs.seed_tracks,
                              on_token=on_token)
    seconds = time.perf_counter() - compose_started
    takes, first = [], 0
    for job in jobs:
        takes.append(composed[first:first + len(job.inputs.takes)])
        first += len(job.inputs.takes)
        job.timings["compose"] = seconds  # the batch's, where jobs composed together
        job.report("composed", 0.55)
    return takes


def _write(job: _Started, composer: Composer, takes: list[Composed]) -> RunResult:
    """A composed job's run folder: MIDI, stems, Live set and run.json, written to a temporary
    folder and moved into place."""
    request, conditions, messages = job.request, job.inputs.conditions, job.inputs.messages
    report, started, timings, model_genre = job.report, job.started, job.timings, job.model_genre
    run_dir = request.out or _default_run_dir(request.runs_root, conditions)
    _check_out_dir(run_dir)
    remove_stale_partials(run_dir.parent)  # what a killed run (kill -9, a power cut) left here
    results: list[RunResult] = []
    written: list[TakeFolder] = []
    try:
        with atomic_folder(run_dir) as tmp:
            # rendered before anything is named (the names tell renders apart), the takes side by side
            renders = _render_takes(request, takes, report) if request.stems else [None] * len(takes)
            for number, (composed, rendered) in enumerate(zip(takes, renders, strict=True), 1):
                folder = tmp if len(takes) == 1 else tmp / f"take{number}"
                folder.mkdir(exist_ok=True)
                arrangement = composed.arrangement
                take_timings = dict(timings)
                if rendered is not None:
                    take_timings["render"] = rendered.seconds
                midi = midi_files(arrangement)
                name = file_name_base(arrangement.conditions, composer.weights_sha256,
                                      output_identity(midi, request, rendered.info if rendered else None))
                manifest = _manifest(request, composer, model_genre, composed, _write_midi(folder, midi, name))
                manifest.name = name
                if len(takes) > 1:
                    manifest.take = TakeRecord(number=number, of=len(takes), decoder="batched")
                if rendered is not None:
                    manifest.add_render(write_rendered(folder, rendered.stems, rendered.info, name, arrangement.conditions.key))
                    if request.section_loops:
                        _write_section_loops(folder, rendered.stems, manifest, name)
                take_timings["total"] = time.perf_counter() - started
                manifest.timings = {k: round(v, 3) for k, v in take_timings.items()}
                manifest.messages = messages + composed.warnings
                final = run_dir if len(takes) == 1 else run_dir / folder.name
                results.append(RunResult(final, manifest, arrangement, manifest.messages))
                written.append(TakeFolder("" if folder == tmp else folder.name, manifest, arrangement))
            # one Live set (and DAWproject) for the run: a scene per take, take 1 in the Arrangement
            finish_takes(tmp, run_dir, written, dawproject=request.dawproject)
    except FolderExistsError as error:  # another run with the same --out finished first
        raise RunError(f"--out: {run_dir} was created by another run while this one composed; this "
                       "run is not kept; choose another folder", field="out") from error
    report("done", 1.0)
    first = results[0]
    if len(results) > 1:
        first.takes = results
    return first


def _write_section_loops(folder: Path, stems, manifest: RunManifest, name: str) -> None:
    """Each section of the form as loop files, named in run.json's form beside the section."""
    from stemforge.audio.section_loops import write_section_loops

    sections = manifest.structure["form"]["sections"]
    written = write_section_loops(folder, stems, sections, name, acid_root_note(manifest.conditions.key))
    for section, files in zip(sections, written, strict=True):
        section["loops"] = files


class _Rendered(NamedTuple):
    """One take's render before it is written: the stems, what run.json says of them, the time."""

    stems: StemSet
    info: dict
    seconds: float


def _render_takes(request: RunRequest, takes: list[Composed], report: Progress) -> list[_Rendered]:
    """Each take's render, the takes side by side on the usable cores
    (synthesis and effects release the GIL: 4 takes rendered one after another took N x one
    take's wall time). The progress is the takes' mean within the run's 0.55-1.0 (it once jumped
    back from 55% to 0% when rendering started)."""
    from concurrent.futures import ThreadPoolExecutor

    from stemforge.symbolic.core.cores import usable_cores

    fractions = [0.0] * len(takes)
    lock = threading.Lock()

    def render(number: int) -> _Rendered:
        def take_report(stage: str, fraction: float) -> None:
            with lock:  # a progress bar or a job's status file is not thread-safe
                fractions[number] = min(1.0, max(0.0, fraction))
                label = stage if len(takes) == 1 else f"take {number + 1}/{len(takes)}: {stage}"
                report(label, 0.55 + 0.45 * sum(fractions) / len(takes))

        started = time.perf_counter()
        stems, info = render_stems(takes[number].arrangement, request, take_report)
        return _Rendered(stems, info, time.perf_counter() - started)

    if len(takes) == 1 or not renderer_named(request.renderer).renders_takes_together:
        return [render(number) for number in range(len(takes))]
    with ThreadPoolExecutor(max_workers=min(len(takes), usable_cores()), thread_name_prefix="render") as pool:
        return list(pool.map(render, range(len(takes))))


def _manifest(request: RunRequest, composer: Composer, model_genre: str, composed: Composed,
              midi: dict[str, str]) -> RunManifest:
    """run.json of a composed piece, before rendering and bookkeeping."""
    conditions = composed.arrangement.conditions
    return RunManifest(
        conditions=conditions, seed=conditions.seed, midi=midi, prompt=request.prompt, model_genre=model_genre,
        sampling=SamplingRecord(temperature=request.temperature, top_k=request.top_k, top_p=request.top_p,
                                key_bias=request.key_bias, decoder=request.decoder),
        model=ModelRecord(path=str(composer.path), sha256=composer.weights_sha256,
                          data_sha256=composer.meta.get("data_sha256")),
        context=ContextRecord(seed_midi=str(request.seed_midi) if request.seed_midi else None,
                              from_run=str(request.from_run) if request.from_run else None, keep=list(request.keep),
                              like=str(request.like) if request.like else None),
        tokens=len(composed.token_ids), token_ids=composed.token_ids,
        structure=({"form": composed.form} if composed.form
                   else {**composed.composition.to_dict(), "chords": conditions.chords}), feel=composed.feel,
        tokens_sampled=composed.stats.sampled, tokens_forced=composed.stats.forced,
    )


def midi_files(arrangement: Arrangement) -> dict[str, bytes]:
    """The MIDI files of a piece, encoded: one per role, and the full piece under FULL_MIDI."""
    files = {role: arrangement.midi_bytes((role,)) for role in arrangement.tracks}
    files[FULL_MIDI] = arrangement.midi_bytes()
    return files


def _write_midi(directory: Path, midi: dict[str, bytes], name: str) -> dict[str, str]:
    """<name>_full.mid and midi/<name>_<role>.mid; returns run.json's `midi` (role -> relative path)."""
    from stemforge.symbolic.core.paths import write_atomic

    paths = {role: f"{name}_full.mid" if role == FULL_MIDI else f"midi/{name}_{role}.mid" for role in midi}
    for role, data in midi.items():
        write_atomic(directory / paths[role], data)
    return paths


def output_identity(midi: dict[str, bytes], request: RunRequest, render_info: dict | None) -> dict:
    """What the files of a take hold, for its name (`run_manifest.take_tag`): the sha256 of
    every MIDI file, and how they became audio."""
    import hashlib

    identity: dict = {"midi": {role: hashlib.sha256(data).hexdigest() for role, data in sorted(midi.items())}}
    if render_info is not None:
        identity["render"] = render_identity(request, render_info)
    return identity


def render_identity(request: RunRequest, info: dict) -> dict:
    """Every render setting that changes the audio, sounds by their content: renderer, sample
    rate, SoundFont, kit, preset, instruments, effects, tails, loudness, MusicGen weights and
    melody condition. (Two renders of one MIDI with another --kit got the same file names.)"""
    from stemforge.audio.assets import sha256_of

    preset = request.preset
    if preset is not None and Path(preset).expanduser().is_file():
        preset = sha256_of(Path(preset).expanduser())
    identity = {
        "renderer": request.renderer, "sample_rate": request.sample_rate,
        "soundfont": (info.get("soundfont") or {}).get("sha256"), "kit": (info.get("kit") or {}).get("sha256"),
        "preset": [preset, info.get("preset")], "instruments": info.get("instruments"), "dry": request.dry,
        "tail": request.tail, "loudness": [request.loudness_lufs, request.true_peak_dbtp],
    }
    identity.update(renderer_named(request.renderer).identity(request))
    return identity


def check_render_request(request: RunRequest) -> str | None:
    """The render files of a checked request (`RunRequest.check` ran its settings' rules),
    before composing: what its renderer needs (preset, SoundFont, kit; for MusicGen that its
    weights are on disk, in the cache or, a hub id the user named, reachable). Returns a line
    worth telling."""
    return renderer_named(request.renderer).check(request)


MAX_RENDER_SECONDS = 1800.0  # stems longer than this would not fit a laptop's memory (4 float32 copies)


def check_render_length(conditions: Conditions, where: str = "bars") -> None:
    """A piece whose stems would be longer than MAX_RENDER_SECONDS is refused before rendering."""
    seconds = conditions.bars * 4 * 60.0 / conditions.bpm
    if seconds > MAX_RENDER_SECONDS:
        raise RunError(f"{where}: {conditions.bars} bars at {conditions.bpm:g} bpm is {seconds / 60:.0f} minutes of "
                       f"audio; stems are rendered up to {MAX_RENDER_SECONDS / 60:.0f} minutes: ask for fewer bars",
                       field="bars")


def render_stems(arrangement: Arrangement, request: RunRequest, progress: Progress | None = None):
    """The stems of `arrangement` from the request's renderer and what run.json records of
    their render, leveled to the request's loudness and under its true-peak ceiling
    (audio.loudness)."""
    from stemforge.audio.loudness import level_stems

    check_render_length(arrangement.conditions)
    report = progress or (lambda stage, fraction: None)
    stems, info = renderer_named(request.renderer).render(arrangement, request, report)
    report("loudness", 0.96)
    stems, loudness = level_stems(stems, request.loudness_settings())
    if loudness.short_of_target_db > 0.05:
        info["warnings"] = [*info.get("warnings", []), (
            f"loudness: the mix reached {loudness.integrated_lufs:g} LUFS, {loudness.short_of_target_db:g} dB short "
            f"of {loudness.target_lufs:g}: more gain would put its true peak above {loudness.true_peak_ceiling_dbtp:g} "
            "dBTP (stemforge applies gain, not a limiter)")]
    return stems, {**info, "loudness": loudness.to_dict()}


def write_rendered(directory: Path, stems, info: dict, name: str, key: str) -> dict:
    """Write rendered stems into `directory`; returns the run.json fields of the render."""
    from stemforge.audio.render import write_stems

    files = write_stems(stems, directory, name, acid_root_note(key))
    return {**info, **files}


def _copy_run(run_dir: Path, tmp: Path) -> None:
    """The run folder (not its stems or hidden files) copied into the folder `tmp`; the first failure raised
    as itself (shutil.copytree gathers them into one shutil.Error, without the errno that tells
    a full disk)."""
    failures: list[OSError] = []

    def copy(source: str, target: str) -> None:
        try:
            shutil.copy2(source, target)
        except OSError as error:
            failures.append(error)
            raise

    try:
        shutil.copytree(run_dir, tmp, symlinks=True, ignore=shutil.ignore_patterns("stems", ".*"), copy_function=copy,
                        dirs_exist_ok=True)  # into the locked partial folder itself, not a new one
    except shutil.Error:
        if failures:
            raise failures[0] from None
        raise


def render_run(run_dir: Path, request: RunRequest, out: Path | None = None) -> Path:
    """`pipeline render`: new stems for an existing run's MIDI, without recomposing.

    With `out`, the run is copied there with its new stems; without, the run folder is
    re-rendered in place only when it has no stems yet (stems are never silently replaced).
    Every file the render reads is checked against run.json's sha256 first; the new stems,
    mix and Live set are named after their render (`output_identity`), so two renders of
    one run never share file names.
    """
    request.check()
    check_render_request(request)
    manifest = RunManifest.read(run_dir)
    check_render_length(manifest.conditions, "RUN_DIR: run.json's bars")
    arrangement = arrangement_from_run(run_dir, manifest)
    target = out or run_dir
    if out is not None:
        _check_out_dir(out)
    elif manifest.stems:
        raise RunError(f"RUN_DIR: {run_dir} already has stems; pass --out NEW_DIR to render a copy")
    remove_stale_partials(target.parent)
    midi = {role: Path(run_dir, relative).read_bytes() for role, relative in manifest.midi.items()}
    old_render = [manifest.mix, manifest.live_set, manifest.dawproject, *manifest.stems.values()]
    # in place (no --out), the run folder is swapped whole for its rendered copy
    with atomic_folder(target, replace=out is None) as tmp:
        _copy_run(run_dir, tmp)
        for relative in filter(None, old_render):
            if not relative.startswith("../"):  # a take's run-level Live set stays with the run
                (tmp / relative).unlink(missing_ok=True)
        started = time.perf_counter()
        stems, info = render_stems(arrangement, request)
        manifest.name = file_name_base(manifest.conditions, manifest.model.sha256,
                                       output_identity(midi, request, info))
        manifest.add_render(write_rendered(tmp, stems, info, manifest.name, manifest.conditions.key))
        manifest.timings["render"] = round(time.perf_counter() - started, 3)
        finish_takes(tmp, target, [TakeFolder("", manifest, arrangement)], dawproject=request.dawproject)
    return target
