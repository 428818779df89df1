"""User-facing failures: one message that names what is wrong and how to fix it."""
import errno
import shutil
from pathlib import Path


class DomainftError(Exception):
    """An error the user can fix (bad recipe, missing file, bad data...).

    The CLI prints the message alone (no traceback) and exits with status 2.
    """

    exit_code = 2


def where_to_look(path: Path) -> str:
    """For a file that is not there: where relative paths start, and the nearest name beside it
    (finance_sentiment.yml for .yaml, train.csv for train.csv.gz) when one is close."""
    import difflib

    path = Path(path)
    hint = f"relative paths start at {Path.cwd()}"
    try:
        names = [p.name for p in path.parent.iterdir()] if path.parent.is_dir() else []
    except OSError:
        names = []
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f"{hint}; did you mean {path.with_name(close[0])}?" if close else hint


class RecipeError(DomainftError):
    """The recipe failed validation; `problems` lists each `field.path: message`."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = problems
        head = f"recipe {source} is invalid:" if source else "recipe is invalid:"
        super().__init__("\n  ".join([head, *problems]))


class DataError(DomainftError):
    """Input data is unreadable or inconsistent; the message names file and line."""


# How a full disk shows: an OSError's errno, or (from safetensors' and tokenizers' Rust code) its
# text. torch.save says nothing of the cause ("unexpected pos 576 vs 534"): there, what is left on
# the disk tells.
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # this platform's numbers (EDQUOT is 122 on Linux, 69 on macOS)
_NO_SPACE_TEXTS = ("No space left on device", "Disk quota exceeded", *(f"os error {n}" for n in _NO_SPACE_ERRNOS))
_NEARLY_FULL_BYTES = 16 * 2**20


def full_disk(error: BaseException, places) -> tuple[str, int] | None:
    """(the place, its bytes free) when `error` came from a full disk under one of `places` (the
    directories a command writes: a run directory, the cache), else None."""
    chain, seen = [], error
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    said = any((isinstance(e, OSError) and e.errno in _NO_SPACE_ERRNOS)
               or any(text in str(e) for text in _NO_SPACE_TEXTS) for e in chain)
    disks = []
    for place in places:
        existing = next((p for p in [Path(place), *Path(place).parents] if p.exists()), None)
        if existing is not None:
            disks.append((shutil.disk_usage(existing).free, str(place)))
    if not disks:
        return None
    free, where = min(disks)
    return (where, free) if said or free < _NEARLY_FULL_BYTES else None


def out_of_space(error: BaseException, places, then: str) -> DomainftError | None:
    """The message for a full disk (see full_disk), ending with what to do `then`; None otherwise."""
    found = full_disk(error, places)
    if found is None:
        return None
    where, free = found
    return DomainftError(f"no space left on the disk of {where} ({free / 2**20:.1f} MiB free; "
                         f"{type(error).__name__}: {str(error)[:200]}). Free some space, then {then}")
