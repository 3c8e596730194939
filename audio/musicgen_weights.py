"""Which MusicGen-Melody weights a run may use, checked before anything slow and without
torch (the service's main process and a run's checks import this, not audio/musicgen.py):
a local folder, a LoRA folder and its base, or a hub id that is cached or, because the user
named it, reachable. Every failure says how to get weights, their size and their licence."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from stemforge.symbolic.core.errors import UserError

FINETUNE_FILE = "stemforge_finetune.json"  # written by finetune_musicgen next to a LoRA adapter
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class MusicGenError(UserError):
    """A model, option or input the MusicGen renderer cannot use; one line naming it."""


# What a producer must know before fetching published weights (sizes of the fp32 safetensors).
KNOWN_WEIGHTS: dict[str, str] = {
    "facebook/musicgen-melody": "about 6 GB",
    "facebook/musicgen-melody-large": "about 13 GB",
    "facebook/musicgen-stereo-melody": "about 6 GB",
    "facebook/musicgen-stereo-melody-large": "about 13 GB",
}
WEIGHTS_LICENCE = "CC-BY-NC 4.0, non-commercial use only"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
REACHABLE_TIMEOUT_SECONDS = 5.0  # the hub client otherwise retries for ~46 s on an offline machine


def how_to_get(hub_id: str) -> str:
    """The command, size and licence of a hub model, for error messages."""
    folder = "~/models/" + hub_id.split("/")[-1]
    size = KNOWN_WEIGHTS.get(hub_id, "size: see the model page")
    licence = WEIGHTS_LICENCE if hub_id.startswith("facebook/") else "see the model page"
    return f"fetch it once online with `hf download {hub_id} --local-dir {folder}` ({size}; licence {licence}), then pass that folder"


def check_musicgen_weights(model: str, flag: str = "--musicgen") -> str:
    """Before anything slow: is `model` a usable MusicGen-Melody folder, a LoRA folder whose base
    is on disk or in the cache, or a hub id that is cached or (because the user named it) can be
    downloaded now? Returns a line to tell the user (e.g. what will be downloaded); raises
    MusicGenError naming `flag`, the command to get the weights, their size and licence."""
    folder = Path(model).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise MusicGenError(f"{flag} {model}: is a file; pass a model folder or a hub id", field="musicgen")
        if (folder / FINETUNE_FILE).is_file():
            if not (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
                raise MusicGenError(f"{flag} {model}: a finetune-musicgen folder without its adapter or weights; "
                                    "run finetune-musicgen again", field="musicgen")
            if (folder / "adapter_config.json").is_file():
                base = json.loads((folder / FINETUNE_FILE).read_text()).get("base", "")
                if not Path(base).expanduser().is_dir() and not _in_hub_cache(base):
                    raise MusicGenError(f"{flag} {model}: its base model {base} is neither a folder here nor in "
                                        f"the Hugging Face cache; {how_to_get(base)}", field="musicgen")
                return f"MusicGen: LoRA folder {model} on base {base}"
        if not (folder / "config.json").is_file() or not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise MusicGenError(f"{flag} {model}: no config.json and weights (model.safetensors) in the folder; "
                                "pass a MusicGen-Melody folder (a hub snapshot, finetune-musicgen output) or "
                                f"{how_to_get('facebook/musicgen-melody')}", field="musicgen")
        return f"MusicGen: folder {model}"
    if not HUB_ID.match(model):
        raise MusicGenError(f"{flag} {model}: no such folder and not a hub id; pass a folder or "
                            f"{how_to_get('facebook/musicgen-melody')}", field="musicgen")
    if _in_hub_cache(model):
        return f"MusicGen: {model} from the Hugging Face cache"
    if not _hub_reachable(model):
        raise MusicGenError(f"{flag} {model}: not in the Hugging Face cache and the hub cannot be reached "
                            f"(offline?); {how_to_get(model)}", field="musicgen")
    size = KNOWN_WEIGHTS.get(model, "size: see the model page")
    licence = WEIGHTS_LICENCE if model.startswith("facebook/") else "see the model page"
    return f"MusicGen: downloading {model} because you named it ({size}; licence {licence})"


def _in_hub_cache(hub_id: str) -> bool:
    if not HUB_ID.match(hub_id or ""):
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        return any(isinstance(try_to_load_from_cache(hub_id, name), str) for name in WEIGHT_FILES)
    except Exception:  # an unusual id or cache layout counts as not cached
        return False


def _hub_reachable(hub_id: str) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        return False
    try:
        from huggingface_hub import model_info

        model_info(hub_id, timeout=REACHABLE_TIMEOUT_SECONDS)
        return True
    except Exception:  # no network, no such model, a gated repo: the message says how to get it
        return False
