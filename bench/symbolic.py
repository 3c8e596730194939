"""Sampling speed: stemforge's grammar-constrained sampler vs `transformers` `generate()` on
the same model, batch 1, in the same run.

    python bench/symbolic.py [--model MODEL_DIR] [--bars 8] [--repeats 3] [--takes 4 8]

Then takes: N pieces composed together through the batched decoder (`pipeline run --takes N`)
against one piece, the same `compose_takes` call `pipeline run` makes, in the same run.

Without --model it uses the shipped composer; --random builds a random-weight GPT-2 at the
default size (6x256) instead (speed per token does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

# Run as a file, this folder would shadow the `symbolic` package of the same name.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from stemforge.symbolic.conditions import ROLES, build_conditions  # noqa: E402
from stemforge.symbolic.model import Composer, build_gpt2, load_composer  # noqa: E402
from stemforge.symbolic.plan import plan_for  # noqa: E402
from stemforge.symbolic.sampling import SamplePlan, Sampler, SamplingSettings  # noqa: E402
from stemforge.symbolic.tokenizer import ComposerTokenizer, TokenizerSpec  # noqa: E402


def random_composer(n_layer: int, n_embd: int, n_head: int) -> Composer:
    tokenizer = ComposerTokenizer(TokenizerSpec(genres=["lofi", "house"]))
    model = build_gpt2(len(tokenizer), n_layer, n_head, n_embd, 2048, 0.0, tokenizer.pad_id, tokenizer.bos_id,
                       tokenizer.eos_id).eval()
    return Composer(Path("random"), tokenizer, {"genres": tokenizer.genres}, model)


def time_sampler(composer: Composer, bars: int, repeats: int, composed: bool = False
                 ) -> tuple[float, float, float]:
    """(tokens per second, seconds per piece, share of the tokens the model sampled). With
    `composed`, the piece follows the composition plan `pipeline run` gives it by default
    (a 4-bar loop whose repeats are forced tokens, chords, kick lock, genre emphasis)."""
    sampler = Sampler(composer)
    genre = composer.genres[0]
    plan = SamplePlan(composer.tokenizer.prefix_ids(genre, 80, "A minor", "normal", bars), ROLES, bars)
    tokens, sampled, seconds = 0, 0, 0.0
    for seed in range(repeats):
        if composed:
            conditions = build_conditions(genre, key="A minor", bars=bars, seed=seed)
            composition, _ = plan_for(conditions, composer.tokenizer.spec.grid_per_beat)
            plan = replace(plan, key=conditions.key, composition=composition, genre=genre)
        started = time.perf_counter()
        ids = sampler.sample(plan, SamplingSettings(), seed)
        seconds += time.perf_counter() - started
        tokens += len(ids) - len(plan.prefix_ids)
        sampled += sampler.stats.sampled
    return tokens / seconds, seconds / repeats, sampled / tokens


def time_generate(composer: Composer, new_tokens: int, repeats: int) -> tuple[float, float]:
    prefix = composer.tokenizer.prefix_ids(composer.genres[0], 80, "A minor", "normal", 8)
    input_ids = torch.tensor([prefix])
    seconds = 0.0
    for seed in range(repeats):
        torch.manual_seed(seed)
        started = time.perf_counter()
        with torch.inference_mode():
            composer.model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=True,
                                    max_new_tokens=new_tokens, min_new_tokens=new_tokens, top_p=0.95,
                                    pad_token_id=composer.tokenizer.pad_id)
        seconds += time.perf_counter() - started
    return new_tokens * repeats / seconds, seconds / repeats


def time_takes(composer: Composer, bars: int, counts: list[int], repeats: int) -> list[dict]:
    """Seconds to compose N takes (run defaults: loop, chords, groove) vs one take, each
    count measured `repeats` times (median), and whether each take equals the piece its seed
    composes alone (the batched decoder's float rounding could change a token)."""
    from statistics import median

    from stemforge.symbolic.compose import compose_takes

    genre = composer.genres[0]
    settings = SamplingSettings()
    idea = build_conditions(genre, bars=bars, seed=1000)
    alone = {}

    def takes_of(count: int, offset: int) -> list:
        return [(replace(idea, seed=1000 + offset + n), 1000 + offset + n) for n in range(count)]

    compose_takes(composer, takes_of(1, 0), settings)  # warm: grammar tables, first allocations
    rows = []
    for count in [1, *counts]:
        times, same = [], 0
        for repeat in range(repeats):
            started = time.perf_counter()
            composed = compose_takes(composer, takes_of(count, repeat * 100), settings)
            times.append(time.perf_counter() - started)
            for (conditions, seed), piece in zip(takes_of(count, repeat * 100), composed, strict=True):
                if seed not in alone:
                    alone[seed] = compose_takes(composer, [(conditions, seed)], settings)[0].token_ids
                same += piece.token_ids == alone[seed]
        rows.append({"takes": count, "seconds": median(times), "identical": same, "pieces": count * repeats})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="model directory (default: the shipped composer)")
    parser.add_argument("--random", action="store_true", help="random-weight 6x256 GPT-2 instead (use few --bars: "
                        "random weights write very dense bars)")
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--takes", type=int, nargs="*", default=[4, 8], help="take counts to time (none: skip)")
    args = parser.parse_args()
    composer = random_composer(6, 256, 4) if args.random else load_composer(args.model)
    parameters = sum(p.numel() for p in composer.model.parameters())
    print(f"model: {composer.path} ({parameters / 1e6:.1f}M parameters), torch threads {torch.get_num_threads()}")
    ours_rate, ours_piece, _ = time_sampler(composer, args.bars, args.repeats)
    plan_rate, plan_piece, plan_sampled = time_sampler(composer, args.bars, args.repeats, composed=True)
    # generate() gets the same number of tokens as one of our pieces
    tokens_per_piece = int(ours_rate * ours_piece)
    hf_rate, hf_piece = time_generate(composer, tokens_per_piece, args.repeats)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the setting our sampler uses, so the comparison is like for like
    hf1_rate, hf1_piece = time_generate(composer, tokens_per_piece, args.repeats)
    torch.set_num_threads(threads)
    print(f"{'sampler':34s} {'tokens/s':>10s} {'s per piece':>12s}")
    print(f"{'stemforge (grammar, KV, 1 thread)':34s} {ours_rate:10.0f} {ours_piece:12.2f}")
    print(f"{'  + composition plan (run default)':34s} {plan_rate:10.0f} {plan_piece:12.2f}   "
          f"({plan_sampled:.0%} of tokens sampled, the rest forced: repeats and structure)")
    print(f"{f'transformers generate() ({threads} thr)':34s} {hf_rate:10.0f} {hf_piece:12.2f}")
    print(f"{'transformers generate() (1 thread)':34s} {hf1_rate:10.0f} {hf1_piece:12.2f}")
    print(f"ratio stemforge / generate(): {ours_rate / hf_rate:.2f}x ({threads} threads), "
          f"{ours_rate / hf1_rate:.2f}x (1 thread); {args.bars}-bar 3-track piece = {tokens_per_piece} tokens")
    if args.takes:
        rows = time_takes(composer, args.bars, args.takes, args.repeats)
        one = rows[0]["seconds"]
        print(f"\ntakes (compose_takes, run defaults, {args.bars} bars, median of {args.repeats})")
        print(f"{'takes':>5s} {'seconds':>8s} {'x one take':>10s} {'x N runs':>9s} {'same as alone':>14s}")
        for row in rows:
            print(f"{row['takes']:5d} {row['seconds']:8.2f} {row['seconds'] / one:10.2f} "
                  f"{row['seconds'] / (one * row['takes']):9.2f} {row['identical']:>8d} of {row['pieces']}")


if __name__ == "__main__":
    main()
