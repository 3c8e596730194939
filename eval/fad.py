"""Frechet distance between two sets of embedding frames, with the small-set tools that
make the number honest: a bootstrap interval over clips and FAD-inf.

FAD (Kilgour et al. 2019) fits a Gaussian to each set of frames and measures

    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)).

The estimate is biased upwards for finite sets, and the bias shrinks like 1/N (Chong &
Forsyth 2020; Gui et al. 2024): FAD-inf fits FAD against 1/N over subsets of the
generated frames and reports the intercept, the value an infinite set would give.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import linalg

# Below these counts the number still comes out but the report says plainly that it
# carries little meaning: covariance needs many more frames than dimensions, and a
# handful of clips cannot show the spread of a style.
MIN_CLIPS = 10
MIN_FRAMES_PER_DIM = 5
# One or two clips on a side are one or two takes, not a set: a bootstrap over them has at
# most three distinct resamples, so their interval is no interval and the row is not compared.
FEW_CLIPS = 2


def embedding_statistics(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (n, dim) frames, in float64."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or len(frames) < 2:
        raise ValueError(f"need at least 2 embedding frames of shape (n, dim), got {frames.shape}")
    return frames.mean(axis=0), np.cov(frames, rowvar=False).reshape(frames.shape[1], frames.shape[1])


def frechet_distance(
    mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b).

    Guards as in the FID/FAD reference code: when the product of covariances is close to
    singular (fewer frames than dimensions) sqrtm returns inf/nan, so a small ridge is
    added; a tiny imaginary part from round-off is dropped; the result is clipped at 0.
    """
    mu_a, mu_b = np.atleast_1d(mu_a).astype(np.float64), np.atleast_1d(mu_b).astype(np.float64)
    sigma_a, sigma_b = np.atleast_2d(sigma_a).astype(np.float64), np.atleast_2d(sigma_b).astype(np.float64)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise ValueError(f"embedding dims differ: {mu_a.shape} vs {mu_b.shape}")
    diff = mu_a - mu_b
    covmean = linalg.sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(covmean).all():
        ridge = np.eye(len(sigma_a)) * eps
        covmean = linalg.sqrtm((sigma_a + ridge) @ (sigma_b + ridge))
    if np.iscomplexobj(covmean):
        scale = max(1.0, float(np.abs(covmean).max()))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * scale):
            # A large imaginary part means a badly conditioned product; the ridge fixes it.
            ridge = np.eye(len(sigma_a)) * max(eps, 1e-6 * float(np.trace(sigma_a) + np.trace(sigma_b)))
            covmean = linalg.sqrtm((sigma_a + ridge) @ (sigma_b + ridge))
        covmean = covmean.real
    distance = float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean))
    return max(distance, 0.0)


def fad(frames_a: np.ndarray, frames_b: np.ndarray) -> float:
    return frechet_distance(*embedding_statistics(frames_a), *embedding_statistics(frames_b))


@dataclass
class FadResult:
    """One FAD number with everything needed to judge it."""

    fad: float
    ci_low: float | None
    ci_high: float | None
    fad_inf: float | None
    n_generated_clips: int
    n_reference_clips: int
    n_generated_frames: int
    n_reference_frames: int
    dim: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class _ClipMoments:
    """Per-clip frame counts, sums and sums of outer products: a bootstrap resample of
    clips then costs a weighted sum instead of re-stacking frames."""

    def __init__(self, clips: list[np.ndarray]) -> None:
        self.counts = np.array([len(c) for c in clips], dtype=np.float64)
        self.sums = np.stack([c.astype(np.float64).sum(axis=0) for c in clips])
        self.outer = np.stack([c.astype(np.float64).T @ c.astype(np.float64) for c in clips])

    def statistics(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = float(weights @ self.counts)
        mu = (weights @ self.sums) / n
        second = np.tensordot(weights, self.outer, axes=1)
        sigma = (second - n * np.outer(mu, mu)) / max(n - 1.0, 1.0)
        return mu, sigma


def bootstrap_interval(
    generated: list[np.ndarray], reference: list[np.ndarray], rounds: int, rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile interval of FAD when the clips of both sets are resampled with
    replacement (frames of one clip are not independent, so clips are the unit)."""
    if rounds <= 0 or len(generated) < 2 or len(reference) < 2:
        return None
    gen, ref = _ClipMoments(generated), _ClipMoments(reference)
    values = []
    for _ in range(rounds):
        w_gen = np.bincount(rng.integers(0, len(generated), len(generated)), minlength=len(generated))
        w_ref = np.bincount(rng.integers(0, len(reference), len(reference)), minlength=len(reference))
        if w_gen @ gen.counts < 2 or w_ref @ ref.counts < 2:
            continue
        values.append(frechet_distance(*gen.statistics(w_gen.astype(float)), *ref.statistics(w_ref.astype(float))))
    if not values:
        return None
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def fad_infinity(
    generated_frames: np.ndarray, reference_frames: np.ndarray, rng: np.random.Generator, steps: int = 10,
) -> float | None:
    """FAD extrapolated to an infinite generated set: FAD of random subsets of N frames
    against the full reference, a line fitted over 1/N, and its intercept (Gui et al. 2024,
    as in fadtk's `score_inf`). None when there are too few frames to fit a line."""
    n = len(generated_frames)
    dim = generated_frames.shape[1]
    smallest = max(dim + 2, n // 4)
    if n < 2 * smallest or n < 8:
        return None
    mu_ref, sigma_ref = embedding_statistics(reference_frames)
    sizes = np.unique(np.linspace(smallest, n, steps).astype(int))
    scores = []
    for size in sizes:
        subset = generated_frames[rng.choice(n, size=size, replace=False)]
        scores.append(frechet_distance(*embedding_statistics(subset), mu_ref, sigma_ref))
    slope, intercept = np.polyfit(1.0 / sizes, np.asarray(scores), 1)
    return float(intercept)


def small_set_warnings(n_gen_clips: int, n_ref_clips: int, n_gen_frames: int, n_ref_frames: int,
                       dim: int) -> list[str]:
    warnings = []
    for side, clips, frames in (("generated", n_gen_clips, n_gen_frames), ("reference", n_ref_clips, n_ref_frames)):
        if clips <= FEW_CLIPS:
            warnings.append(
                f"only {clips} {side} clip(s): FAD from one or two clips measures those takes, not a style; "
                "its interval means nothing and it cannot be compared with other rows"
            )
        elif clips < MIN_CLIPS:
            warnings.append(
                f"only {clips} {side} clip(s): FAD from fewer than {MIN_CLIPS} clips swings a lot; "
                "read it as a rough indication, not a score"
            )
        if frames < MIN_FRAMES_PER_DIM * dim:
            warnings.append(
                f"only {frames} {side} frames for a {dim}-dim embedding (want >= {MIN_FRAMES_PER_DIM * dim}): "
                "the covariance is poorly estimated and FAD is inflated"
            )
    return warnings


def fad_with_intervals(
    generated: list[np.ndarray], reference: list[np.ndarray], bootstrap: int = 200, seed: int = 0,
) -> FadResult:
    """FAD of generated vs reference clips (each clip an (n_frames, dim) array), with a
    bootstrap interval, FAD-inf, the counts, and plain warnings when the sets are small."""
    generated = [c for c in generated if len(c)]
    reference = [c for c in reference if len(c)]
    gen_frames, ref_frames = np.concatenate(generated), np.concatenate(reference)
    dim = gen_frames.shape[1]
    rng = np.random.default_rng(seed)
    value = fad(gen_frames, ref_frames)
    interval = bootstrap_interval(generated, reference, bootstrap, rng)
    inf = fad_infinity(gen_frames, ref_frames, rng)
    warnings = small_set_warnings(len(generated), len(reference), len(gen_frames), len(ref_frames), dim)
    if inf is None:
        warnings.append("FAD-inf not computed: too few generated frames to extrapolate")
    return FadResult(
        fad=value, ci_low=interval[0] if interval else None, ci_high=interval[1] if interval else None,
        fad_inf=inf, n_generated_clips=len(generated), n_reference_clips=len(reference),
        n_generated_frames=len(gen_frames), n_reference_frames=len(ref_frames), dim=dim, warnings=warnings,
    )


def has_usable_interval(result: dict) -> bool:
    """A FAD row (FadResult.to_dict()) whose bootstrap interval can be compared: one was
    drawn (--bootstrap > 0) from more than FEW_CLIPS clips on each side."""
    return (result.get("fad") is not None and result.get("ci_low") is not None
            and result.get("ci_high") is not None and min(result.get("n_generated_clips", 0),
                                                          result.get("n_reference_clips", 0)) > FEW_CLIPS)


def intervals_overlap(a: dict, b: dict) -> bool:
    """Whether two FAD rows' 95% bootstrap intervals overlap. If they do, the two numbers
    cannot be told apart: the difference is within what resampling the clips moves them.
    (Disjoint intervals are a conservative sign of a real difference, not a test.)"""
    return a["ci_low"] <= b["ci_high"] and b["ci_low"] <= a["ci_high"]
