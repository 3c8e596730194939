"""The `pipeline` command. Every subcommand is a thin layer over one library function;
errors in user input print one line and exit 2 (set STEMFORGE_DEBUG=1 for a traceback)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.paths import disk_full
from stemforge.symbolic.core.progress import stderr_is_terminal

try:  # the first import that reads the genre table: a broken entry is one line naming its genre and part
    from stemforge.pipeline.flags import RUN_GROUPS, add_request_flags, request_from_args
except UserError as error:
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(2) from None

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows "(default: X)" only where there is a default worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        # `0 in (False,)` is true in Python: compare by identity, so a default of 0 is shown
        hidden = default is None or default is False or default is argparse.SUPPRESS or default in ("", [], ())
        # a switch's default is the other switch's value (--full stores False into `lora`,
        # whose default True read as "--full: default True"): its help says which is the default
        hidden = hidden or isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction)
        if not hidden and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class RunProgress:
    """One progress line per run that only moves forward: a bar on a terminal, otherwise a
    plain line at each new stage ("run: 55% composed"), so logs stay readable."""

    def __init__(self) -> None:
        self.fraction, self.stage = 0.0, ""
        self.bar = None
        if stderr_is_terminal():
            from tqdm import tqdm

            self.bar = tqdm(total=100, desc="run", unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def __call__(self, stage: str, fraction: float) -> None:
        self.fraction = max(self.fraction, min(1.0, fraction))
        if self.bar is not None:
            self.bar.n = int(self.fraction * 100)
            self.bar.set_postfix_str(stage)
        elif stage.split(" ")[0] != self.stage.split(" ")[0]:  # a new stage, not every token or stem
            print(f"run: {self.fraction:4.0%} {stage}", file=sys.stderr, flush=True)
        self.stage = stage

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_run(args: argparse.Namespace) -> int:
    from stemforge.pipeline.run import run

    progress = RunProgress()
    try:
        result = run(request_from_args(args), progress)
    finally:
        progress.close()
    for message in result.messages:
        print(message, file=sys.stderr)
    if result.takes:
        folder = result.run_dir.parent
        conditions = result.manifest.conditions
        print(f"wrote {folder}  ({len(result.takes)} takes: {conditions.genre}, {conditions.bpm:g} bpm, "
              f"{conditions.bars} bars)")
        for take in result.takes:
            print(f"  {take.run_dir.name:7s} {take.manifest.conditions.key}, seed {take.manifest.seed}"
                  + (f"  {take.run_dir.name}/{take.manifest.mix}" if take.manifest.mix else ""))
        for label, path in (("Live", result.manifest.live_set), ("DAWproj", result.manifest.dawproject)):
            if path:  # one for the run, a scene per take
                print(f"  {label:7s} {path.removeprefix('../')}")
        return 0
    manifest = result.manifest
    conditions = manifest.conditions
    print(f"wrote {result.run_dir}  ({conditions.genre}, {conditions.bpm:g} bpm, {conditions.key}, "
          f"{conditions.bars} bars, seed {manifest.seed})")
    for role, path in manifest.midi.items():
        print(f"  {role:7s} {path}")
    for role, path in manifest.stems.items():
        print(f"  {role:7s} {path}")
    if manifest.mix:
        print(f"  mix     {manifest.mix}")
    if manifest.live_set:
        print(f"  Live    {manifest.live_set}")
    if manifest.dawproject:
        print(f"  DAWproj {manifest.dawproject}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from stemforge.symbolic.training.prepare import PrepareConfig, prepare_dataset

    summary = prepare_dataset(args.midi_dir, args.out, args.metadata, PrepareConfig.load(args.config))
    print(f"prepared {args.out}: {summary['files']['used']} files used, {summary['files']['skipped']} skipped "
          f"(see prepare_report.md); {summary['windows']['train']} train / {summary['windows']['valid']} valid "
          f"windows; {summary['tokens']['train']} train tokens; genres: {', '.join(summary['genres'])}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from stemforge.symbolic.training.train import TrainConfig, checkpoint_config, train

    config = checkpoint_config(args.out) if args.resume and args.config is None else None
    if config is None:
        shipped = ("finetune_lora" if args.lora is not None else "finetune") if args.init else "small"
        config = TrainConfig.load(args.config or shipped)
    if args.lora is not None:
        config.lora_rank = args.lora
    meta = train(args.data_dir, args.out, config, resume=args.resume, steps=args.steps, init=args.init)
    if "val_loss" not in meta:  # a non-leading process of a multi-process (torchrun) run
        return 0
    print(f"trained {args.out}: {meta['steps']} steps, val loss {meta['val_loss']:.3f}, "
          f"{meta['parameters'] / 1e6:.1f}M parameters, {meta['train_seconds']:.0f} s (loss curve: loss.png)")
    if "init" in meta:
        losses = meta["fine_tune_losses"]
        print(f"fine-tuned from {meta['init']['path']} ({meta['method']}): validation loss on your data "
              f"{losses['before']:.3f} before, {losses['after']:.3f} after; see MODEL_CARD.md")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from stemforge.symbolic.training.training_index import build_novelty_index, rebuild_model_index

    if args.model is not None:
        bars = rebuild_model_index(args.data_dir, args.model)
        print(f"rebuilt the novelty index of {args.model} from {args.data_dir}: {bars} training bars")
    else:
        bars = build_novelty_index(args.data_dir)
        print(f"rebuilt {args.data_dir}/index: {bars} training bars")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from stemforge.pipeline.run import render_run

    target = render_run(args.run_dir, request_from_args(args, stems=True), args.out)
    print(f"rendered {target}")
    return 0


def cmd_sounds(args: argparse.Namespace) -> int:
    from stemforge.audio.assets import find_sounds

    sounds = find_sounds()
    if args.json:
        print(json.dumps([{"name": s.name, "kind": s.kind, "path": str(s.path), "source": s.source}
                          for s in sounds], indent=1))
        return 0
    for sound in sounds:
        print(f"{sound.kind:9s} {sound.name:32s} {sound.path}  ({sound.source})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from stemforge.eval.report import EvalRequest, run_eval

    weights = {}
    for item in args.embedding_weights:
        name, separator, value = item.partition("=")
        if not separator or not value:
            raise UserError(f"--embedding-weights: {item!r} is not NAME=PATH (e.g. vggish=~/vggish.pth)")
        weights[name] = value
    report = run_eval(EvalRequest(
        run_dirs=args.run_dirs, out_dir=args.out, model_dir=args.model, data_dir=args.data,
        reference=args.reference, embeddings=tuple(args.embedding or ("features",)), embedding_weights=weights,
        bootstrap=args.bootstrap, seed=args.seed, cache_dir=args.cache_dir, use_cache=not args.no_cache,
    ))
    print(f"wrote {args.out}/report.md, report.html, report.json")
    for warning in report.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_corpus(args: argparse.Namespace) -> int:
    from stemforge.configs import resolve_config
    from stemforge.symbolic.recipes.corpus import CorpusConfig, build_corpus

    summary = build_corpus(args.data, args.out, CorpusConfig.load(resolve_config(args.config, "corpus")))
    print(f"built corpus {args.out}: {summary['files']} files, {summary['notes']} notes in {summary['seconds']} s "
          f"(see corpus.json, corpus.png); next: pipeline prepare {args.out} --out DATA_DIR "
          f"--metadata {args.out}/tracks.csv --config default")
    return 0


def cmd_finetune_musicgen(args: argparse.Namespace) -> int:
    from stemforge.audio.musicgen_finetune import FinetuneRequest, finetune_musicgen

    summary = finetune_musicgen(FinetuneRequest(
        stems_dir=args.stems_dir, out_dir=args.out, base=args.base, lora=args.lora, steps=args.steps,
        chunk_seconds=args.chunk_seconds, batch_size=args.batch_size, grad_accum=args.grad_accum,
        learning_rate=args.learning_rate, resume=args.resume, seed=args.seed,
    ))
    print(f"fine-tuned {args.out}: {json.dumps({k: v for k, v in summary.items() if not isinstance(v, list)})}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from stemforge.pipeline.service import serve

    try:
        serve(host=args.host, port=args.port, data_dir=args.data,
              token=args.token or os.environ.get("STEMFORGE_TOKEN"), model=args.model, workers=args.workers,
              config=args.config, broker=args.broker)
    except KeyboardInterrupt:  # uvicorn stopped cleanly first (running jobs queued again), then re-raised the signal
        pass
    print("stemforge: stopped", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from stemforge.pipeline.broker_worker import worker_main

    worker_main(args.broker, args.data, args.model, args.musicgen, args.threads, burst=args.burst)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from stemforge.pipeline.batch import PoolRunner, print_summary, run_batch

    broker = ((lambda: PoolRunner.broker(args.broker, args.model, args.data, args.out, args.musicgen))
              if args.broker else None)
    items = run_batch(args.prompts, args.out, args, args.model, args.workers, broker)
    return print_summary(items, args.out, args.prompts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline", formatter_class=HelpFormatter,
        description="stemforge: compose drums, bass and melody as MIDI and render them as synced WAV stems.",
        epilog='example: pipeline run --prompt "lofi 80bpm" --stems',
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="compose (and render) a piece", formatter_class=HelpFormatter,
                       description="Compose drums, bass and melody from a prompt into a new run folder.")
    add_request_flags(p, RUN_GROUPS)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("prepare", help="turn a folder of MIDI into a training dataset", formatter_class=HelpFormatter)
    p.add_argument("midi_dir", type=Path, help="folder of .mid/.midi files (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    p.add_argument("--metadata", type=Path, help="CSV with a filename column and any of genre, bpm, key, group")
    p.add_argument("--config", help="prepare config: a shipped name (default) or a YAML path with window_bars, "
                   "stride_bars, transpositions, valid_fraction, ...")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train the composer on a prepared dataset", formatter_class=HelpFormatter)
    p.add_argument("data_dir", type=Path, help="folder written by `pipeline prepare`")
    p.add_argument("--out", type=Path, required=True, help="model directory to create")
    p.add_argument("--config", default=None, help="training config: a shipped name (tiny, small) or a YAML path "
                   "(default: small; with --resume, the checkpoint's own)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted (or finished) run from its checkpoint")
    p.add_argument("--steps", type=int, help="total optimisation steps (overrides the config's max_steps)")
    p.add_argument("--init", metavar="default|MODEL_DIR", help="fine-tune: start from the shipped model's (default) "
                   "or another model folder's weights, its vocabulary and size (default config then: finetune)")
    p.add_argument("--lora", type=int, nargs="?", const=8, metavar="RANK", help="with --init: train LoRA adapters "
                   "(peft) of this rank (8 when no rank is given) instead of every weight")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("index", help="rebuild a dataset's (and its model's) novelty index", formatter_class=HelpFormatter,
                       description="Rebuild the novelty index of a prepared dataset from its training pieces, "
                       "in this stemforge's reading of bars; with --model, also the index of a model trained on it.")
    p.add_argument("data_dir", type=Path, help="folder written by `pipeline prepare`")
    p.add_argument("--model", type=Path, help="a model trained on DATA_DIR whose index/ is replaced (checked by the "
                   "data's sha256)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("render", help="render an existing run's MIDI to stems again", formatter_class=HelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run folder written by `pipeline run`")
    p.add_argument("--out", type=Path, help="write a copy of the run with the new stems here (needed when the run "
                   "already has stems)")
    add_request_flags(p, ("stems",), skip=("stems",))
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("sounds", help="list the SoundFonts and drum kits found", formatter_class=HelpFormatter)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_sounds)

    p = sub.add_parser("eval", help="FAD and SHA-256 novelty report for run folders", formatter_class=HelpFormatter)
    p.add_argument("run_dirs", type=Path, nargs="+", help="run folders with stems")
    p.add_argument("--out", type=Path, required=True, help="report folder to create")
    p.add_argument("--model", type=Path, help="model directory (its copy of the training index and reference MIDI); "
                   "default: the model the runs were made with")
    p.add_argument("--data", type=Path, help="prepared dataset to compare against (overrides the model's index)")
    p.add_argument("--reference", type=Path, help="folder of your own stems/mixes or MIDI as the FAD reference")
    p.add_argument("--embedding", action="append", default=None,
                   help="embedding(s) for FAD, repeatable: features (weight-free, the default), vggish, pann, encodec")
    p.add_argument("--embedding-weights", action="append", default=[], metavar="NAME=PATH",
                   help="local weights (or a hub id you name) for an embedding")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the FAD interval")
    p.add_argument("--seed", type=int, default=0, help="seed for bootstrap and reference sampling")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where rendered+embedded reference frames are cached (default: $STEMFORGE_CACHE_DIR, else "
                   "$XDG_CACHE_HOME/stemforge or ~/.cache/stemforge)")
    p.add_argument("--no-cache", action="store_true",
                   help="neither read nor write the frames cache: render and embed everything again")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("corpus", help="build the default training corpus from ../shared/data",
                       formatter_class=HelpFormatter)
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared real-MIDI folder")
    p.add_argument("--out", type=Path, required=True, help="corpus folder to create")
    p.add_argument("--config", default="default", help="corpus recipe: shipped name or YAML path")
    p.set_defaults(func=cmd_corpus)

    p = sub.add_parser("finetune-musicgen", help="fine-tune MusicGen-Melody on your stems",
                       formatter_class=HelpFormatter)
    p.add_argument("stems_dir", type=Path, help="folder of WAV/FLAC/AIFF stems (+ .txt sidecars or metadata.csv)")
    p.add_argument("--out", type=Path, required=True, help="folder for the fine-tuned model")
    p.add_argument("--base", required=True, help="base MusicGen-Melody weights: a local folder (e.g. from `hf download "
                   "facebook/musicgen-melody --local-dir ~/models/musicgen-melody`, about 6 GB, CC-BY-NC 4.0) or a "
                   "hub id, downloaded only because you name it")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--lora", dest="lora", action="store_true", default=True,
                     help="train LoRA adapters (the default)")
    how.add_argument("--full", dest="lora", action="store_false", help="full fine-tune of the decoder instead of LoRA")
    p.add_argument("--steps", type=int, default=200, help="optimisation steps")
    p.add_argument("--chunk-seconds", type=float, default=10.0, help="training crop length")
    p.add_argument("--batch-size", type=int, default=2, help="clips per step")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--learning-rate", type=float, default=1e-4, help="AdamW learning rate")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.set_defaults(func=cmd_finetune_musicgen)

    p = sub.add_parser("serve", help="HTTP API + web page to compose, listen and download",
                       formatter_class=HelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for the LAN: set --token)")
    p.add_argument("--port", type=int, default=8000, help="port")
    p.add_argument("--data", type=Path, default=Path("stemforge-service"), help="queue database and job folders")
    p.add_argument("--token", help="bearer token required by the API (or env STEMFORGE_TOKEN)")
    p.add_argument("--model", type=Path, help="model directory (default: the shipped composer)")
    p.add_argument("--workers", type=int, default=1, help="jobs run at once")
    p.add_argument("--config", type=Path, help="service limits YAML (default: configs/service.yaml)")
    p.add_argument("--broker", help="redis://[:PASSWORD@]HOST:6379/0: run jobs on `pipeline worker` processes on "
                   "any machine instead of local workers (--workers is then unused); see docs/service.md")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run the jobs of a `pipeline serve --broker` on this machine",
                       formatter_class=HelpFormatter,
                       description="Load the composer once, then run the broker's jobs for that model, writing "
                       "run folders into the shared data folder. Ctrl-C/SIGTERM hand the running job back to the queue and exit.")
    p.add_argument("--broker", required=True, help="the Redis URL the API was started with")
    p.add_argument("--data", type=Path, required=True, help="the API's data folder, as mounted on this machine")
    p.add_argument("--model", type=Path, help="model directory (default: the shipped composer); takes only jobs "
                   "for these weights")
    p.add_argument("--musicgen", help="MusicGen-Melody weights on this machine: also takes the renderer=musicgen "
                   "jobs of an API whose musicgen_model has the same name")
    p.add_argument("--threads", type=int, default=None, help="threads for a job's takes and for torch (the torch decoder, "
                   "MusicGen); default: this machine's cores (give 1 each to several workers sharing a machine)")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("batch", help="render many prompts (one a line) into one folder with an index",
                       formatter_class=HelpFormatter,
                       description="Render every line of PROMPTS (a prompt, optionally followed by `pipeline run` "
                       "flags; # comments) into DIR/items/, with DIR/index.json and index.csv. The flags below are "
                       "every line's defaults. A second call with the same --out skips the finished items.")
    p.add_argument("prompts", type=Path, metavar="PROMPTS", help="text file, one prompt a line")
    p.add_argument("--out", type=Path, required=True, help="batch folder (created, or resumed when it is one)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (without --broker)")
    p.add_argument("--broker", help="redis://[:PASSWORD@]HOST:6379/0: run the items on that broker's workers "
                   "(`pipeline worker`); --out must then be inside the shared --data folder")
    p.add_argument("--data", type=Path, help="with --broker: the shared data folder as mounted here (the "
                   "workers' --data)")
    add_request_flags(p, RUN_GROUPS, skip=("out",))
    p.set_defaults(func=cmd_batch)
    return parser


_interrupted = threading.Event()


def _terminate(signum: int, frame) -> None:
    # SIGTERM (a process manager, `kill`) unwinds like Ctrl-C, so the cleanup of a
    # half-written run, dataset or report runs too (training installs its own handler).
    # Remembered: an interrupt that lands inside a native library's import (pedalboard's)
    # comes back out as that library's ImportError, not as KeyboardInterrupt.
    _interrupted.set()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _terminate)
    try:
        return args.func(args)
    except (UserError, FileNotFoundError, PermissionError, NotADirectoryError) as error:
        if os.environ.get("STEMFORGE_DEBUG"):
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - a bug: shown as one, with its traceback
        if _interrupted.is_set():  # the interrupt, turned into another error by the code it stopped
            print("interrupted", file=sys.stderr)
            return 130
        full = disk_full(error, getattr(error, "filename", None) or "the output folder")
        if full is not None and not os.environ.get("STEMFORGE_DEBUG"):  # a full disk is not a bug
            print(f"error: {full}", file=sys.stderr)
            return EXIT_USER_ERROR
        traceback.print_exc(file=sys.stderr)
        print(f"internal error: {type(error).__name__}: {error} -- a bug in stemforge, not in your input; "
              "please report it with the traceback above", file=sys.stderr)
        return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
