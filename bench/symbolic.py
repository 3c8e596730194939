"""Sampling speed: stemforge's grammar-constrained sampler (int8, compiled and torch decoders) vs
`transformers` `generate()` on the same model, batch 1, in the same run; the pieces of every
sampler are interleaved round by round, so load on a shared machine hits them alike.

    python bench/symbolic.py [--model MODEL_DIR] [--bars 8] [--repeats 3] [--takes 4 8] [--positions 100 1500]

Then:
- the decoder's step at positions ~100 and ~1500 (a long piece's late tokens), one row, CPU
  time, interleaved: how much reading the KV cache adds as a piece grows;
- takes: N pieces composed together through the batched decoder (`pipeline run --takes N`)
  against one piece, the same `compose_takes` call `pipeline run` makes, rounds interleaved:
  CPU time in one thread (the work the takes share) and wall time with the usable cores (what
  a producer waits), each take checked token for token against its seed composed alone.
The machine (CPU, caches, cores, memory speed) and the load during the run are printed too
(bench/machine.py).

Without --model it uses the shipped composer; --random builds a random-weight GPT-2 at the
default size (6x256) instead (speed per token does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

# Run as a file, this folder would shadow the `symbolic` package of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.machine import reported  # noqa: E402
from stemforge.symbolic.decoding.model import Composer, build_gpt2, load_composer  # noqa: E402
from stemforge.symbolic.music.conditions import ROLES, build_conditions  # noqa: E402
from stemforge.symbolic.music.tokenizer import ComposerTokenizer, TokenizerSpec  # noqa: E402
from stemforge.symbolic.runtime.plan import plan_for  # noqa: E402
from stemforge.symbolic.runtime.sampling import SamplePlan, Sampler, SamplingSettings  # noqa: E402


def random_composer(n_layer: int, n_embd: int, n_head: int) -> Composer:
    tokenizer = ComposerTokenizer(TokenizerSpec(genres=["lofi", "house"]))
    model = build_gpt2(len(tokenizer), n_layer, n_head, n_embd, 2048, 0.0, tokenizer.pad_id, tokenizer.bos_id,
                       tokenizer.eos_id).eval()
    return Composer(Path("random"), tokenizer, {"genres": tokenizer.genres}, model)


def sampler_timer(composer: Composer, bars: int, composed: bool = False, decoder: str = "compiled"):
    """A function seed -> (tokens, seconds, tokens sampled) for one piece. With `composed`, the
    piece follows the composition plan `pipeline run` gives it by default (a 4-bar loop whose
    repeats are forced tokens, chords, kick lock, genre emphasis)."""
    sampler = Sampler(composer)
    settings = SamplingSettings(decoder=decoder)
    sampler.sample(SamplePlan(composer.tokenizer.prefix_ids(composer.genres[0], 80, "A minor", "normal", 1), ROLES, 1),
                   settings, 0)  # warm: grammar tables, the compiled step loaded from its cache
    genre = composer.genres[0]
    plain = SamplePlan(composer.tokenizer.prefix_ids(genre, 80, "A minor", "normal", bars), ROLES, bars)

    def one_piece(seed: int) -> tuple[int, float, int]:
        plan = plain
        if composed:
            conditions = build_conditions(genre, key="A minor", bars=bars, seed=seed)
            composition, _ = plan_for(conditions, composer.tokenizer.spec.grid_per_beat)
            plan = replace(plain, key=conditions.key, composition=composition, genre=genre)
        started = time.perf_counter()
        ids = sampler.sample(plan, settings, seed)
        return len(ids) - len(plan.prefix_ids), time.perf_counter() - started, sampler.stats.sampled

    return one_piece


def time_generate(composer: Composer, new_tokens: int, seed: int, threads: int) -> float:
    """Seconds for `generate()` to sample `new_tokens` after the same prefix, with `threads`."""
    prefix = composer.tokenizer.prefix_ids(composer.genres[0], 80, "A minor", "normal", 8)
    input_ids = torch.tensor([prefix])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    started = time.perf_counter()
    with torch.inference_mode():
        composer.model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=True,
                                max_new_tokens=new_tokens, min_new_tokens=new_tokens, top_p=0.95,
                                pad_token_id=composer.tokenizer.pad_id)
    seconds = time.perf_counter() - started
    torch.set_num_threads(before)
    return seconds


def time_takes(composer: Composer, bars: int, counts: list[int], repeats: int, decoder: str) -> list[dict]:
    """CPU seconds in one thread and wall seconds with the usable cores to compose N takes (run
    defaults: loop, chords, groove) and one take, rounds interleaved (each round composes every
    count once in each setting; medians of `repeats` rounds), and how many takes equal the piece
    their seed composes alone."""
    from statistics import median

    from stemforge.symbolic.runtime.compose import compose_takes

    genre = composer.genres[0]
    settings = SamplingSettings(decoder=decoder)
    idea = build_conditions(genre, bars=bars, seed=1000)
    alone: dict[int, list[int]] = {}

    def takes_of(count: int, offset: int) -> list:
        return [(replace(idea, seed=1000 + offset + n), 1000 + offset + n) for n in range(count)]

    def composed(count: int, offset: int, threads: str | None) -> tuple[float, float, list]:
        previous = os.environ.get("OMP_NUM_THREADS")
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = threads  # kernels.decode_threads: the takes' threads
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            pieces = compose_takes(composer, takes_of(count, offset), settings)
            return time.process_time() - cpu, time.perf_counter() - wall, pieces
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous

    composed(1, 0, "1")  # warm: grammar tables, first allocations
    samples: dict[int, dict[str, list[float]]] = {count: {"cpu": [], "wall": []} for count in [1, *counts]}
    same = dict.fromkeys(samples, 0)
    for repeat in range(repeats):
        for count in samples:
            cpu, _, pieces = composed(count, repeat * 100, "1")
            _, wall, _ = composed(count, repeat * 100, None)
            samples[count]["cpu"].append(cpu)
            samples[count]["wall"].append(wall)
            for (conditions, seed), piece in zip(takes_of(count, repeat * 100), pieces, strict=True):
                if seed not in alone:
                    alone[seed] = compose_takes(composer, [(conditions, seed)], settings)[0].token_ids
                same[count] += piece.token_ids == alone[seed]
    return [{"takes": count, "cpu": median(times["cpu"]), "wall": median(times["wall"]), "identical": same[count],
             "pieces": count * repeats} for count, times in samples.items()]


def time_steps(composer: Composer, positions: list[int], repeats: int, steps: int = 30) -> dict[str, dict[int, float]]:
    """CPU milliseconds of one decoder step (one row, one token) after `position` tokens, for the
    int8 and compiled decoders, positions and decoders interleaved, median of `repeats` rounds of
    `steps` steps. The cache holds a real piece's tokens (a 16-bar piece, repeated to length)."""
    from statistics import median

    sampler = Sampler(composer)
    plan = SamplePlan(composer.tokenizer.prefix_ids(composer.genres[0], 80, "A minor", "normal", 16), ROLES, 16)
    piece = sampler.sample(plan, SamplingSettings(), 0)
    filler = (piece * (max(positions) // len(piece) + 2))[:max(positions) + 1]
    decoders = {}
    for name in ("int8", "compiled"):
        for position in positions:
            decoder = sampler.rows_decoder(name, 1)
            decoder.forward(filler[:position])
            decoders[name, position] = decoder
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in decoders}
    for _ in range(repeats):
        for (name, position), decoder in decoders.items():
            started = time.process_time()
            for _ in range(steps):
                decoder.lengths[0] = position
                decoder.forward([filler[position]])
            samples[name, position].append((time.process_time() - started) / steps * 1000)
    return {name: {position: median(samples[name, position]) for position in positions} for name in ("int8", "compiled")}


def time_threads(composer: Composer, bars: int, repeats: int) -> tuple[float, float, bool]:
    """Seconds for two pieces composed one after the other and side by side in two threads
    (a Sampler each, compiled decoder), median of `repeats`, and whether the kernels are the
    module compiled ahead of time: side by side is faster only where the kernels release the GIL."""
    import threading
    from statistics import median

    from stemforge.symbolic.decoding.kernels import kernels

    samplers = [Sampler(composer), Sampler(composer)]
    plan = SamplePlan(composer.tokenizer.prefix_ids(composer.genres[0], 80, "A minor", "normal", bars), ROLES, bars)
    settings = SamplingSettings()
    for sampler in samplers:
        sampler.sample(plan, settings, 0)  # warm
    serial, parallel = [], []
    for repeat in range(repeats):
        started = time.perf_counter()
        for number, sampler in enumerate(samplers):
            sampler.sample(plan, settings, 10 * repeat + number)
        serial.append(time.perf_counter() - started)
        threads = [threading.Thread(target=sampler.sample, args=(plan, settings, 10 * repeat + number))
                   for number, sampler in enumerate(samplers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        parallel.append(time.perf_counter() - started)
    return median(serial), median(parallel), kernels().ahead_of_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory (default: the shipped composer)")
    parser.add_argument("--random", action="store_true", help="random-weight 6x256 GPT-2 instead (use few --bars: "
                        "random weights write very dense bars)")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--takes", type=int, nargs="*", default=[4, 8], help="take counts to time (none: skip)")
    parser.add_argument("--positions", type=int, nargs="*", default=[100, 1500],
                        help="positions whose step is timed (the first is the reference; none: skip)")
    args = parser.parse_args()
    composer = random_composer(6, 256, 4) if args.random else load_composer(args.model)
    parameters = sum(p.numel() for p in composer.model.parameters())
    print(f"model: {composer.path} ({parameters / 1e6:.1f}M parameters), torch threads {torch.get_num_threads()}")
    threads = torch.get_num_threads()
    default = SamplingSettings().decoder
    timers = {"torch": sampler_timer(composer, args.bars, decoder="torch"),
              "compiled": sampler_timer(composer, args.bars),
              "int8": sampler_timer(composer, args.bars, decoder="int8"),
              "plan": sampler_timer(composer, args.bars, composed=True, decoder=default)}
    totals = {name: [0, 0.0, 0] for name in [*timers, "generate", "generate1"]}
    # rounds interleave every sampler, so a change of load on a shared machine hits all alike
    for seed in range(args.repeats):
        for name, timer in timers.items():
            tokens, seconds, sampled = timer(seed)
            totals[name] = [totals[name][0] + tokens, totals[name][1] + seconds, totals[name][2] + sampled]
        tokens = totals["compiled"][0] // (seed + 1)  # generate() gets as many tokens as our pieces have
        for name, thread_count in (("generate", threads), ("generate1", 1)):
            seconds = time_generate(composer, tokens, seed, thread_count)
            totals[name] = [totals[name][0] + tokens, totals[name][1] + seconds, 0]
    rate = {name: tokens / seconds for name, (tokens, seconds, _) in totals.items()}
    piece = {name: seconds / args.repeats for name, (_, seconds, _) in totals.items()}
    plan_sampled = totals["plan"][2] / totals["plan"][0]
    tokens_per_piece = totals["compiled"][0] // args.repeats
    print(f"{'sampler':34s} {'tokens/s':>10s} {'s per piece':>12s}   (load {os.getloadavg()[0]:.1f})")
    print(f"{'stemforge, torch decoder':34s} {rate['torch']:10.0f} {piece['torch']:12.2f}")
    print(f"{'stemforge, compiled decoder':34s} {rate['compiled']:10.0f} {piece['compiled']:12.2f}")
    print(f"{'stemforge, int8 decoder':34s} {rate['int8']:10.0f} {piece['int8']:12.2f}")
    print(f"{f'  {default} + composition plan (run default)':34s} {rate['plan']:10.0f} {piece['plan']:12.2f}   "
          f"({plan_sampled:.0%} of tokens sampled, the rest forced: repeats and structure)")
    print(f"{f'transformers generate() ({threads} thr)':34s} {rate['generate']:10.0f} {piece['generate']:12.2f}")
    print(f"{'transformers generate() (1 thread)':34s} {rate['generate1']:10.0f} {piece['generate1']:12.2f}")
    print(f"ratio stemforge (int8) / generate(): {rate['int8'] / rate['generate']:.2f}x ({threads} threads), "
          f"{rate['int8'] / rate['generate1']:.2f}x (1 thread); compiled (float32): "
          f"{rate['compiled'] / rate['generate']:.2f}x, {rate['compiled'] / rate['generate1']:.2f}x; torch decoder: "
          f"{rate['torch'] / rate['generate']:.2f}x, {rate['torch'] / rate['generate1']:.2f}x; "
          f"{args.bars}-bar 3-track piece = {tokens_per_piece} tokens")
    serial, parallel, ahead = time_threads(composer, args.bars, args.repeats)
    print(f"two pieces in two threads (kernels {'compiled ahead of time' if ahead else 'from the JIT'}): "
          f"{parallel:.2f} s against {serial:.2f} s one after the other ({parallel / serial:.2f}x)")
    if args.positions:
        step_ms = time_steps(composer, args.positions, max(5, args.repeats))
        reference = args.positions[0]
        print(f"\ndecoder step, one row, CPU ms (median of {max(5, args.repeats)} rounds of 30 steps, interleaved)")
        for name, by_position in step_ms.items():
            print(f"  {name:9s} " + ", ".join(f"position {position}: {ms:.3f} ms ({ms / by_position[reference]:.2f}x)"
                                                for position, ms in by_position.items()))
    for decoder in ("int8", "compiled", "torch") if args.takes else ():
        rows = time_takes(composer, args.bars, args.takes, args.repeats, decoder)
        cpu_one, wall_one = rows[0]["cpu"], rows[0]["wall"]
        print(f"\ntakes, {decoder} decoder (compose_takes, run defaults, {args.bars} bars, median of {args.repeats}, "
              f"rounds interleaved)")
        print(f"{'takes':>5s} {'CPU s, 1 thread':>16s} {'x one take':>10s} {'wall s, all cores':>18s} {'x one take':>10s} "
              f"{'same as alone':>14s}")
        for row in rows:
            print(f"{row['takes']:5d} {row['cpu']:16.2f} {row['cpu'] / cpu_one:10.2f} {row['wall']:18.2f} "
                  f"{row['wall'] / wall_one:10.2f} {row['identical']:>8d} of {row['pieces']}")


if __name__ == "__main__":
    with reported():
        main()
