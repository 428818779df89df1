"""Atomic writes: a reader sees the old content or the new, and writers of one file at once (two
processes of a sweep writing the same shared corpus or cache file) all succeed."""
from __future__ import annotations

import threading

import pytest

from domainft import atomic


def test_concurrent_writers_of_one_file_all_succeed_and_leave_one_whole_text(tmp_path):
    path = tmp_path / "corpus.txt"
    texts = [f"{n}\n" * 20_000 for n in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(texts))

    def write(text: str) -> None:
        start.wait()
        try:
            for _ in range(25):
                atomic.write_text(path, text)
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.txt"]  # no temporary file left beside it


def test_a_failed_write_keeps_the_old_content_and_leaves_nothing_beside_it(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic.write_text(path, "old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
