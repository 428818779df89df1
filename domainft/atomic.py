"""Write files and directories so a failure never leaves a half-written result behind."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from domainft.locks import exclusive


def write_text(path: Path, text: str) -> None:
    """Write `path` so that readers see the old content or the new, never a part. Each write goes
    through its own private temporary file, so two processes writing the same file at once (the
    lanes of a sweep writing one shared corpus) both succeed; a failed write removes its temporary
    file (a kill -9 can leave a hidden `.NAME.*.tmp` beside it, never a partial `NAME`)."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    """Write `path` atomically from a private temporary file beside it: for shared caches, where
    concurrent runs may write the same file (each renames its own complete copy into place)."""
    path = Path(path)
    # 0o666 less the umask, applied by the kernel as for any new file (reading the umask would mean
    # setting it, which races with other threads creating files).
    tmp, fd = _private_sibling(path, lambda p: os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _private_sibling(path: Path, create):
    """A new hidden sibling `.NAME.<random>.tmp` made by `create(name)` (which fails if it exists):
    (its path, what `create` returned). Hidden and ending in .tmp: what a kill -9 leaves is known as
    domainft's own (rundir.py)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, create(tmp)
        except FileExistsError:
            continue


@contextmanager
def staged_dir(final: Path):
    """Yield a temporary sibling directory; it becomes `final` only if the block succeeds. Writers of
    one `final` take turns (a second export into one bundle directory waits for the first, then
    replaces it): the staging directory has one fixed name, so that what a kill -9 left there is
    cleared by the next writer, and never while another is filling it."""
    with exclusive(final):
        tmp = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_dir(tmp, final)


def replace_dir(new: Path, final: Path) -> None:
    """Put the complete directory `new` in `final`'s place. The old directory is moved aside, not
    deleted, until the new one is in place: at every moment `final` is the old complete directory
    or the new complete one (or, between the two renames, absent while the old one waits under
    `.NAME.old.tmp`)."""
    old = final.with_name(f".{final.name}.old.tmp")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def published_once(final: Path):
    """Yield a private temporary sibling directory; it becomes `final` when the block succeeds,
    unless another process published `final` first (then ours is discarded). For shared caches
    that concurrent runs may fill at the same time: `final` is never half-written or replaced."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp, _ = _private_sibling(final, lambda p: p.mkdir(0o777))  # 0o777 less the umask, as any new directory
    try:
        yield tmp
        os.rename(tmp, final)  # atomic; fails if final exists and is not empty
    except OSError:
        if not final.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def signals_raise():
    """SIGTERM and SIGHUP (`kill`, `timeout`, a closed terminal, a CI job cancelled) raise SystemExit
    while the block runs, so that cleanup (the staged bundle, scratch files) runs as on Ctrl-C;
    their default action ends the process on the spot. Handlers an application installed are left
    alone, and so is every thread but the main one (only it can take signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_exit(signum, frame):
        raise SystemExit(128 + signum)

    saved = {}
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is signal.SIG_DFL:
            saved[number] = signal.signal(number, raise_exit)
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
