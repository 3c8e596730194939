"""The service on a disk that fills up (a real 24 MB tmpfs): a loop upload, a zip download and a job
answer or fail with "disk full" and its reason (507 for a request), never a 500 or an
"internal error: EOFError"; an upload that cannot be analysed (NaN samples) is a 422 and is not
kept."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.small_disk import fill, small_disk
from tests.test_service import ServiceProcess, post, wait_for, write_config

pytestmark = pytest.mark.slow


def _wav(samples: np.ndarray, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 44100, format="WAV", subtype=subtype)
    return buffer.getvalue()


def test_a_full_data_disk_is_507_or_a_failed_job_saying_so(tiny_model: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with small_disk(disk, 24 * 1024 * 1024) as mounted:
        if not mounted:
            pytest.skip("mounting a tmpfs needs root (CI and the development machines run as root)")
        service = ServiceProcess(disk / "data", tiny_model, write_config(tmp_path / "service.yaml"))
        service.log = tmp_path / "server.log"
        service.start()
        try:
            with service.client() as client:
                done = wait_for(client, post(client, prompt="rock 120bpm", bars=1, seed=3)["id"], ("done", "failed"))
                assert done["status"] == "done", done
                t = np.arange(44100 * 3) / 44100
                nan = client.post("/loops", content=_wav(np.full(t.size, np.nan, np.float32), "FLOAT"))
                assert nan.status_code == 422 and "not numbers" in nan.text, nan.text
                assert list((service.data_dir / "uploads").iterdir()) == []  # the upload was not kept

                fill(disk, 96 * 1024)  # room for the job store, not for a job's stems
                job = post(client, prompt="rock 120bpm", bars=1, seed=4)
                failed = wait_for(client, job["id"], ("done", "failed"))
                assert failed["status"] == "failed" and failed["error"].startswith("disk full:"), failed

                fill(disk, 0)
                loop = client.post("/loops", content=_wav((0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)))
                assert loop.status_code == 507 and "disk full" in loop.json()["detail"], loop.text
                archive = client.get(f"/jobs/{done['id']}/zip")
                assert archive.status_code == 507 and "disk full" in archive.json()["detail"], archive.text
            log = service.log.read_text()
            assert "EOFError" not in log and "Traceback" not in log, log[-3000:]
        finally:
            service.stop()
