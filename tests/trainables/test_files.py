"""The one atomic write and the one "did you mean" helper that trainables and search share."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trainables.files import atomic_write
from trainables.suggest import close_match, did_you_mean


def test_atomic_write_takes_bytes_text_or_a_writer(tmp_path: Path) -> None:
    assert atomic_write(tmp_path / "a.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert atomic_write(tmp_path / "b.txt", "héllo").read_text(encoding="utf-8") == "héllo"
    assert atomic_write(tmp_path / "c.bin", lambda fh: fh.write(b"streamed")).read_bytes() == b"streamed"
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644  # not mkstemp's 0600


def test_a_writer_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)

    def half_then_fail(fh) -> None:
        fh.write(b"half of the new")
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError, match="worker killed"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o600  # keeps its mode


def test_atomic_write_into_a_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "nope" / "x", b"")


@pytest.mark.parametrize(("word", "choices", "hint"), [
    ("lr", ["lr", "momentum"], " (did you mean 'lr'?)"),
    ("learning_rat", ["learning_rate", "batch_size"], " (did you mean 'learning_rate'?)"),
    ("adamw", ["sgd", "adam"], " (did you mean 'adam'?)"),
    ("zzz", ["sgd", "adam"], ""),
    ("x", [], ""),
])
def test_did_you_mean(word: str, choices: list[str], hint: str) -> None:
    assert did_you_mean(word, choices) == hint
    assert close_match(word, choices) == (hint.split("'")[1] if hint else None)
