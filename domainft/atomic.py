"""Write files and directories so a failure never leaves a half-written result behind."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@contextmanager
def staged_dir(final: Path):
    """Yield a temporary sibling directory; it becomes `final` only if the block succeeds."""
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


@contextmanager
def published_once(final: Path):
    """Yield a private temporary sibling directory; it becomes `final` when the block succeeds,
    unless another process published `final` first (then ours is discarded). For shared caches
    that concurrent runs may fill at the same time: `final` is never half-written or replaced."""
    import tempfile

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the published directory is an ordinary one
    try:
        yield tmp
        os.rename(tmp, final)  # atomic; fails if final exists and is not empty
    except OSError:
        if not final.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
