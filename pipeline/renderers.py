"""The renderers a run can use, behind one small protocol and chosen once by name.

    renderer = renderer_named(request.renderer)
    stems, info = renderer.render(arrangement, request, progress)

Adding a renderer is one module with a class that satisfies `Renderer` and one line in
`RENDERERS` (a literal dict, as audiocraft keeps its models: no plugin discovery). The run
(`pipeline.run`) levels the stems a renderer returns to the request's loudness and writes
them; a renderer only turns an Arrangement into a StemSet of the stem contract (every role
of the arrangement, `StemSet.check` lengths) and says what run.json records of it
(`RunManifest.RENDER_FIELDS`).

This module imports no torch: the heavy renderers load their libraries inside `render`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from stemforge.pipeline.errors import RunError

if TYPE_CHECKING:
    from stemforge.audio.stems import StemSet
    from stemforge.symbolic.music.arrangement import Arrangement

# pipeline.request.RunRequest; not imported, because the request imports this module for its
# renderer choices (and the layer test counts type-only imports too)
RunRequest = Any

Progress = Callable[[str, float], None]

__all__ = ["RENDERERS", "MusicGenRenderer", "Renderer", "SampleRenderer", "needs_weights", "renderer_named"]


class Renderer(Protocol):
    """Arrangement -> stems. `render` reports progress as (stage, fraction 0..0.95) (the run
    keeps the rest for leveling) and returns the stems and run.json's render fields."""

    name: str
    # whether takes may render side by side in threads (False: one model that runs one piece at a time)
    renders_takes_together: bool
    # whether it loads model weights the operator provides (a service offers it only with them
    # configured, a broker routes it to the workers that hold them)
    needs_weights: bool

    def check(self, request: RunRequest) -> str | None:
        """The request's render files and weights, before composing; a line worth telling or None."""
        ...

    def identity(self, request: RunRequest) -> dict:
        """The request's settings this renderer reads beyond the common render settings
        (`pipeline.run.render_identity`): they name the files, so a change renames them."""
        ...

    def render(self, arrangement: Arrangement, request: RunRequest, progress: Progress) -> tuple[StemSet, dict]:
        ...


class SampleRenderer:
    """SoundFonts, drum kits and FX presets (audio.render): no weights, the default."""

    name: ClassVar[str] = "sample"
    renders_takes_together: ClassVar[bool] = True  # synthesis and effects release the GIL
    needs_weights: ClassVar[bool] = False

    def check(self, request: RunRequest) -> str | None:
        from stemforge.audio.render import check_render_options

        check_render_options(request.render_options())  # the settings' own rules ran in request.check()
        return None

    def identity(self, request: RunRequest) -> dict:
        return {}

    def render(self, arrangement: Arrangement, request: RunRequest, progress: Progress) -> tuple[StemSet, dict]:
        from stemforge.audio.render import render_arrangement

        def sample_progress(stage: str, fraction: float) -> None:
            progress(stage if stage != "done" else "rendered", 0.95 * fraction)

        return render_arrangement(arrangement, request.render_options(), sample_progress)


class MusicGenRenderer:
    """MusicGen-Melody (audio.musicgen), conditioned on the chroma of a melody: the user's
    reference loop (--like), or else the arrangement's melody rendered by the sample renderer.
    Only that melody is rendered with samples (the other parts' sample stems were thrown away)."""

    name: ClassVar[str] = "musicgen"
    renders_takes_together: ClassVar[bool] = False  # MusicGen's model runs one piece at a time
    needs_weights: ClassVar[bool] = True

    def check(self, request: RunRequest) -> str | None:
        from stemforge.audio.musicgen_weights import check_musicgen_weights, how_to_get

        SampleRenderer().check(request)  # the sample renderer's sounds render the melody condition
        if not request.musicgen:
            raise RunError(f"--musicgen: name the MusicGen-Melody weights for --renderer musicgen: a folder, or "
                           f"{how_to_get('facebook/musicgen-melody')}", field="musicgen")
        return check_musicgen_weights(request.musicgen)

    def identity(self, request: RunRequest) -> dict:
        from stemforge.symbolic.core.hashing import file_sha256

        return {"musicgen": [request.musicgen, file_sha256(request.like) if request.like else None]}

    def render(self, arrangement: Arrangement, request: RunRequest, progress: Progress) -> tuple[StemSet, dict]:
        from stemforge.audio.musicgen import MusicGenError, MusicGenOptions, render_musicgen
        from stemforge.audio.stems import StemSet, loop_samples

        conditions = arrangement.conditions
        condition_share = 0.1  # the melody condition's share of the progress: MusicGen's stems are the slow part
        info: dict = {}
        if request.like is not None:  # the user's loop, not a rendered melody, is the melody condition
            from stemforge.audio.loop_analysis import loop_audio

            melody = loop_audio(request.like, request.sample_rate,
                                loop_samples(conditions.bars, conditions.bpm, request.sample_rate))
            melody_source = StemSet(request.sample_rate, conditions.bpm, conditions.bars, {"melody": melody})
        else:
            if "melody" not in arrangement.tracks:
                raise MusicGenError("musicgen: the piece has no melody part to condition on; compose one with it")
            from stemforge.audio.render import render_arrangement

            melody_only = dataclasses.replace(arrangement, tracks={"melody": arrangement.tracks["melody"]})
            melody_source, info = render_arrangement(
                melody_only, request.render_options(),
                lambda stage, fraction: progress("render melody condition", condition_share * fraction))
        roles = len(arrangement.tracks)
        done = {"roles": 0}

        def musicgen_progress(message: str) -> None:
            if " done in " in message:
                done["roles"] += 1
            progress(message, condition_share + (0.95 - condition_share) * done["roles"] / max(1, roles))

        stems, musicgen_info = render_musicgen(
            arrangement, MusicGenOptions(model=request.musicgen, sample_rate=request.sample_rate, seed=conditions.seed),
            melody_source, musicgen_progress,
        )
        musicgen_info["musicgen"]["melody_condition"] = (f"reference loop {request.like}" if request.like
                                                         else "the rendered melody stem")
        # the sample renderer's sounds (when it rendered the melody condition) are recorded with it
        return stems, {**info, **musicgen_info}


# The renderers by the name a request gives (`--renderer`, the API's `renderer`): one line each.
RENDERERS: dict[str, Renderer] = {
    "sample": SampleRenderer(),
    "musicgen": MusicGenRenderer(),
}


def renderer_named(name: str) -> Renderer:
    """The renderer a request names; an unknown name is refused naming the ones there are."""

    try:
        return RENDERERS[name]
    except KeyError:
        raise RunError(f"--renderer: unknown renderer {name!r}; use {' or '.join(RENDERERS)}",
                       field="renderer") from None


def needs_weights(name: str | None) -> bool:
    """Whether the renderer a stored request names loads the operator's weights (the service's
    musicgen_model, a worker's --musicgen); an unknown name needs none (its run refuses it)."""
    return name in RENDERERS and RENDERERS[name].needs_weights
