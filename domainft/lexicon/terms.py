"""Lexicon terms: read from a file, or mined from training words the base tokenizer shreds.

File format: one term per line, `#` starts a comment (at line start or after a space), blank lines
are skipped. A line is `term` or
`term | alias, alias | description`; aliases get tokens of their own that start from the term's
embedding (so `MI` begins where `myocardial-infarction` does), the description can seed the term's
embedding (`lexicon.init: description`).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from domainft.errors import DataError

# A term is one word as tokenizers see it: letters and digits, hyphens inside.
TERM = re.compile(r"^\w+(?:-\w+)*$")


@dataclass
class Term:
    text: str
    aliases: list[str] = field(default_factory=list)
    description: str | None = None
    where: str = ""  # file and line, or "train data"


def read_lexicon(path: Path) -> list[Term]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"lexicon.files: {path} does not exist; give a path relative to the current "
                        "directory (the shipped ones are in lexicons/)")
    terms: list[Term] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()  # `#` comment lines and trailing ` # ...` comments
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) > 3:
            raise DataError(f"{path} line {lineno}: more than 3 fields; a line is `term`, or "
                            "`term | alias, alias | description`")
        text = parts[0]
        aliases = [a.strip() for a in parts[1].split(",") if a.strip()] if len(parts) > 1 else []
        for word in [text, *aliases]:
            if not TERM.match(word):
                raise DataError(f"{path} line {lineno}: {word!r} is not a single word (letters, digits, "
                                "hyphens inside); a term becomes one token, so multi-word phrases "
                                "cannot be terms")
        description = parts[2] if len(parts) > 2 and parts[2] else None
        terms.append(Term(text, aliases, description, f"{path} line {lineno}"))
    if not terms:
        raise DataError(f"lexicon.files: {path} holds no terms (one term per line, # for comments)")
    return terms


def mine_terms(words: list[str], tokenizer, min_pieces: int, min_count: int, max_terms: int) -> list[Term]:
    """The `max_terms` most frequent training words that split into at least `min_pieces` subwords
    and occur at least `min_count` times (counted after the tokenizer's own normalisation)."""
    normalize = normalizer_of(tokenizer)
    counts = Counter(normalize(w) for w in words if TERM.match(w) and not w.isdigit())
    frequent = [w for w, c in counts.most_common() if c >= min_count]
    pieces = tokenizer(frequent, add_special_tokens=False)["input_ids"] if frequent else []
    shredded = [w for w, p in zip(frequent, pieces) if len(p) >= min_pieces]
    return [Term(w, where="train data") for w in shredded[:max_terms]]


def normalizer_of(tokenizer):
    """The tokenizer's text normalisation (lower-casing, accent stripping for uncased BERT), so that
    terms are added in the form the tokenizer matches against."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and backend.normalizer is not None:
        return backend.normalizer.normalize_str
    if getattr(tokenizer, "do_lower_case", False):
        return str.lower
    return lambda s: s
