"""The one way a folder appears whole (symbolic.paths.atomic_folder): written beside its final
name, renamed into place, never over an existing folder unless asked, gone on failure."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

from stemforge.symbolic.core.paths import (
    DiskFullError,
    FolderExistsError,
    atomic_folder,
    is_held,
    partial_owner,
    partial_pattern,
    remove_stale_partials,
)


def test_a_folder_appears_whole_and_its_partial_is_locked_while_written(tmp_path: Path) -> None:
    final = tmp_path / "deep" / "report"
    with atomic_folder(final) as tmp:
        assert not final.exists() and tmp.parent == final.parent and is_held(tmp)
        assert list(final.parent.glob(partial_pattern("report"))) == [tmp] and partial_owner(tmp) == "report"
        assert remove_stale_partials(final.parent) == []  # a living writer's partial stays
        (tmp / "a.txt").write_text("whole")
    assert (final / "a.txt").read_text() == "whole" and list(final.parent.iterdir()) == [final]


def test_an_existing_folder_is_never_written_over_unless_asked(tmp_path: Path) -> None:
    final = tmp_path / "run"
    final.mkdir()  # empty: a plain rename would replace it without a word on Linux
    with pytest.raises(FolderExistsError), atomic_folder(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert list(final.iterdir()) == [] and list(tmp_path.iterdir()) == [final]
    (final / "old.txt").write_text("old")
    with atomic_folder(final, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"] and list(tmp_path.iterdir()) == [final]


def test_a_failure_leaves_nothing_and_a_full_disk_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError), atomic_folder(tmp_path / "model") as tmp:
        (tmp / "half").write_text("half")
        raise ValueError("stopped")
    with pytest.raises(DiskFullError, match="disk full: the disk is full while writing"), \
            atomic_folder(tmp_path / "model"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_two_threads_writing_the_same_folder_get_two_partials_and_one_wins(tmp_path: Path) -> None:
    final = tmp_path / "export"
    both_inside = threading.Barrier(2)
    partials: list[Path] = []
    outcomes: list[str] = []

    def write(text: str) -> None:
        try:
            with atomic_folder(final) as tmp:
                partials.append(tmp)
                (tmp / "who.txt").write_text(text)
                both_inside.wait(timeout=10)
            outcomes.append("written")
        except FolderExistsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=write, args=(text,)) for text in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(partials)) == 2 and sorted(outcomes) == ["refused", "written"]
    assert (final / "who.txt").read_text() in ("a", "b") and list(tmp_path.iterdir()) == [final]
