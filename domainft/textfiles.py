"""Unlabelled text files a recipe lists (distill.transfer, adapt.corpus): .txt (one text a line) or
.jsonl ({"text": ...} or a JSON string a line), gzip or not; and the rule that such a text is never
one of the run's own texts."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from domainft.errors import DomainftError


def read_texts(paths: list[Path], limit: int | None = None, field: str = "texts") -> list[str]:
    """Texts from .txt (one a line) or .jsonl ({"text": ...} or a JSON string a line) files, gzip
    or not, in order, empty lines skipped."""
    texts: list[str] = []
    for path in paths:
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        jsonl = path.name.removesuffix(".gz").endswith(".jsonl")
        try:
            with opener(path, "rt", encoding="utf-8") as f:
                for n, line in enumerate(f, start=1):
                    text = _line_text(line, jsonl, path, n, field)
                    if text:
                        texts.append(text)
                    if limit is not None and len(texts) >= limit:
                        return texts
        except UnicodeDecodeError:
            raise DomainftError(f"{field}: {path} is not UTF-8 text; save it as UTF-8") from None
        except OSError as e:
            raise DomainftError(f"{field}: {path} could not be read ({e})") from None
    return texts


def _line_text(line: str, jsonl: bool, path: Path, n: int, field: str) -> str:
    line = line.strip()
    if not jsonl or not line:
        return line
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise DomainftError(f"{field}: {path} line {n}: not JSON ({e.msg}); a .jsonl file holds "
                            '{"text": ...} or a JSON string per line') from None
    value = value.get("text") if isinstance(value, dict) else value
    if not isinstance(value, str):
        raise DomainftError(f"{field}: {path} line {n}: expected {{\"text\": \"...\"}} or a string")
    return value.strip()


def unseen(texts: list[str], known: list[str]) -> tuple[list[str], int]:
    """`texts` without those that are (normalized, and among themselves) a known text or a repeat:
    an adaptation or transfer text must never be a validation or test text of the run. (kept, dropped)."""
    from domainft.data.splits import normalized_text

    seen = {normalized_text(t) for t in known}
    kept = []
    for text in texts:
        key = normalized_text(text)
        if key and key not in seen:
            seen.add(key)
            kept.append(text)
    return kept, len(texts) - len(kept)
