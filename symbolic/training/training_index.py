"""The novelty index of a prepared dataset, rebuilt from the dataset itself.

`pipeline prepare` keeps the notes of every training piece as they were played
(`train_pieces.npz`: after the meter shift, the drum map and the pitch ranges, before
quantizing) and builds `index/index.npz` from them with `build_novelty_index`, reading them
exactly as `pipeline eval` reads a run (`symbolic.music.canonical.read_piece`). When that reading
changes (`canonical.INDEX_VERSION`), `pipeline train` rebuilds the data's index before it
copies it into the model, and `pipeline index DATA_DIR --model MODEL_DIR` rebuilds a trained
model's index from the data it was trained on (the shipped default model's:
docs/eval.md, "Rebuilding an index").
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stemforge.symbolic.core.errors import UserError
from stemforge.symbolic.core.progress import progress_bar
from stemforge.symbolic.core.ticks import TICKS_PER_BEAT
from stemforge.symbolic.music.arrangement import Note
from stemforge.symbolic.music.canonical import INDEX_VERSION, ROLE_CODES, NoveltyIndex, piece_digests

PIECES_FILE = "train_pieces.npz"
CODE_ROLES: dict[int, str] = {code: role for role, code in ROLE_CODES.items()}


class IndexBuildError(UserError):
    pass


@dataclass
class TrainingPiece:
    source: str  # the file, relative to the MIDI folder
    group: str  # its song (prepare's split unit)
    tracks: dict[str, list[Note]]  # as played, ticks at TICKS_PER_BEAT


def save_training_pieces(pieces: Iterable[TrainingPiece], path: Path) -> None:
    """The training pieces' notes as one compressed table (written atomically)."""
    sources, groups, columns = [], [], []
    for number, piece in enumerate(pieces):
        sources.append(piece.source)
        groups.append(piece.group)
        for role, notes in piece.tracks.items():
            columns += [(number, ROLE_CODES[role], n.start, n.duration, n.pitch, n.velocity) for n in notes]
    table = np.asarray(columns, dtype=np.int64).reshape(-1, 6)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, notes=table.astype(np.int32), sources=np.asarray(sources, dtype=str),
                        groups=np.asarray(groups, dtype=str), ticks_per_beat=np.int32(TICKS_PER_BEAT))
    os.replace(tmp, path)


def load_training_pieces(path: Path) -> list[TrainingPiece]:
    with np.load(path, allow_pickle=False) as data:
        table, sources, groups = data["notes"].astype(np.int64), data["sources"].tolist(), data["groups"].tolist()
        if int(data["ticks_per_beat"]) != TICKS_PER_BEAT:
            raise IndexBuildError(f"{path}: notes at {int(data['ticks_per_beat'])} ticks per beat, this stemforge "
                                  f"uses {TICKS_PER_BEAT}; run `pipeline prepare` again")
    pieces = [TrainingPiece(str(s), str(g), {}) for s, g in zip(sources, groups, strict=True)]
    order = np.lexsort((table[:, 2], table[:, 1], table[:, 0]))
    for number, role, start, duration, pitch, velocity in table[order].tolist():
        pieces[number].tracks.setdefault(CODE_ROLES[role], []).append(Note(start, duration, pitch, velocity))
    return pieces


def novelty_index(pieces: Iterable[TrainingPiece], progress: bool = False, total: int | None = None) -> NoveltyIndex:
    """Every training piece's bars, read as eval reads a run."""
    index = NoveltyIndex()
    for piece in progress_bar(pieces, total=total, desc="novelty index", unit="piece", enabled=progress):
        index.add(piece.source, piece_digests(piece.tracks, TICKS_PER_BEAT), group=piece.group)
    return index


def index_is_current(index_dir: Path) -> bool:
    try:
        meta = json.loads((index_dir / "index.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == INDEX_VERSION and (index_dir / "index.npz").is_file()


def build_novelty_index(data_dir: Path, progress: bool = True) -> int:
    """(Re)build `data_dir/index/index.npz` + `index.json` from `data_dir/train_pieces.npz`;
    returns the training bars indexed. The window store beside it is left as it is."""
    data_dir = Path(data_dir)
    path = data_dir / PIECES_FILE
    if not path.is_file():
        raise IndexBuildError(f"DATA_DIR: {data_dir} has no {PIECES_FILE} (prepared by an older stemforge); run "
                              "`pipeline prepare` again to rebuild the dataset with it")
    pieces = load_training_pieces(path)
    index = novelty_index(pieces, progress=progress, total=len(pieces))
    index.save(data_dir / "index")
    return len(index)


def rebuild_model_index(data_dir: Path, model_dir: Path, progress: bool = True) -> int:
    """Rebuild a trained model's novelty index from the dataset it was trained on (checked by
    the data's sha256); returns the training bars indexed."""
    data_dir, model_dir = Path(data_dir), Path(model_dir)
    meta_path = model_dir / "stemforge.json"
    if not meta_path.is_file():
        raise IndexBuildError(f"--model: {model_dir} is not a stemforge model directory (no stemforge.json)")
    if not (data_dir / "dataset.json").is_file():
        raise IndexBuildError(f"DATA_DIR: {data_dir} is not a prepared dataset (no dataset.json)")
    wanted = json.loads(meta_path.read_text()).get("data_sha256")
    have = json.loads((data_dir / "dataset.json").read_text()).get("data_sha256")
    if wanted != have:
        raise IndexBuildError(f"DATA_DIR: {data_dir} is not the data {model_dir} was trained on (data sha256 "
                              f"{str(have)[:12]} vs the model's {str(wanted)[:12]}); prepare that data again first")
    bars = build_novelty_index(data_dir, progress=progress)
    target = model_dir / "index"
    target.mkdir(exist_ok=True)
    init = json.loads(meta_path.read_text()).get("init")
    if init:  # a fine-tuned model's index holds its init model's training set too
        from stemforge.symbolic.training.finetune import merge_indexes

        if not (Path(init["path"]) / "index" / "index.json").is_file():
            raise IndexBuildError(f"--model: {model_dir} was fine-tuned from {init['path']}, whose index is gone; "
                                  "the rebuilt index needs both")
        index = merge_indexes(NoveltyIndex.load(Path(init["path"]) / "index"), NoveltyIndex.load(data_dir / "index"))
        bars = len(index)
        staging = target / ".rebuilt"
        index.save(staging)
        for name in ("index.npz", "index.json"):
            (staging / name).replace(target / name)
        staging.rmdir()
        return bars
    for name in ("index.npz", "index.json"):
        tmp = target / f".{name}.new"
        shutil.copy(data_dir / "index" / name, tmp)
        tmp.replace(target / name)
    return bars
