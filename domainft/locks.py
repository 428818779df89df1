"""One process at a time on a path: an exclusive lock held for a block.

Used where two processes would otherwise write one place at once: two `domainft run`s into one
output.dir, two exports into one bundle directory, two sweeps adapting one cached base. The lock is
flock(2) on a hidden sibling of the target, `.NAME.lock.tmp` (hidden and ending in .tmp: a run
directory knows such an entry as domainft's own); a run directory's own lock targets a name in the
cache instead (rundir.run_lock_target), so that nothing is written beside the user's files. A
flock goes away with its process, so a run killed with SIGKILL never leaves the lock held; the file
is removed when the block ends (what a kill leaves, an empty file, the next holder takes and
removes), and so are the parent directories the lock had to create, when they are still empty: a
refused or failed command leaves the file system as it was.
POSIX only, as the rest of domainft's file handling.
"""
from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path

# Locks this thread holds (resolved lock files): taking one again nests, as the training of a
# distillation's teacher inside the student's run does. Other threads contend as other processes do
# (each opens the file itself, and flock treats separate opens independently).
_local = threading.local()


def _held() -> set[Path]:
    if not hasattr(_local, "held"):
        _local.held = set()
    return _local.held


class Busy(Exception):
    """The lock is held by another process (and the caller asked not to wait)."""

    def __init__(self, target: Path, holder: str):
        super().__init__(f"{target} is in use by another process" + (f" ({holder})" if holder else ""))
        self.target, self.holder = target, holder


def lock_file(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock.tmp")


@contextmanager
def exclusive(target: Path, *, wait: bool = True, holder: str = ""):
    """Hold the lock on `target` (a file or directory, which need not exist) for the block. With
    wait=False, raise Busy at once when another process holds it. `holder` (who and since when) is
    written into the lock file, for the message another process then shows."""
    path = lock_file(Path(target)).resolve()
    if path in _held():
        yield
        return
    created = _make_parents(path.parent)
    try:
        fd = _acquire(path, wait, Path(target))
        try:
            _held().add(path)
            try:
                os.ftruncate(fd, 0)
                os.write(fd, holder.encode("utf-8"))
            except OSError:  # a full disk: the holder goes unnamed, the lock holds all the same
                pass
            yield
        finally:
            _held().discard(path)
            # Removed before it is unlocked: a process waiting on this file then finds it gone and
            # takes a new one, so two processes never hold locks on two files of the same name.
            path.unlink(missing_ok=True)
            os.close(fd)
    finally:
        for d in created:  # innermost first; a directory someone else has filled stays
            try:
                d.rmdir()
            except OSError:
                break


def _acquire(path: Path, wait: bool, target: Path) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:  # its directory, made empty, was removed by a process that made it
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip()
            os.close(fd)
            raise Busy(target, holder) from None
        except BaseException:
            os.close(fd)
            raise
        if _is_current(fd, path):
            return fd
        os.close(fd)  # its holder removed it while we waited: lock the file that is there now


def _is_current(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _make_parents(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents; return the ones created, innermost first."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
    return missing
