"""Training under torchrun: two gloo processes on the CPU stand in for two GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stemforge.symbolic.decoding.model import load_composer


def test_torchrun_two_processes_train_one_model(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp_model"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "stemforge.pipeline.cli", "train", str(tiny_dataset), "--out", str(out), "--config", "tiny", "--steps", "8"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("trained") == 1  # only the leading process saves and reports
    meta = json.loads((out / "stemforge.json").read_text())
    assert meta["steps"] == 8
    assert load_composer(out).genres == ["hiphop", "house", "rock"]
    assert not out.with_name(out.name + ".partial").exists()
