"""Instruction/response pairs for task: generation, read from JSONL: `{"prompt": ..., "response": ...}`
per line (keys: data.prompt_column / response_column), or a chat list per line (data.messages_column)
whose last assistant message is the response and whose earlier turns are the prompt."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from domainft.chat import with_system_prompt
from domainft.data.layout import read_and_split
from domainft.data.readers import detect_format, read_text
from domainft.data.splits import seeded_split
from domainft.errors import DataError
from domainft.jsonl import json_records

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Instruction:
    messages: tuple[tuple[str, str], ...]  # (role, content) turns before the response
    response: str
    source: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.source} line {self.line}"

    def chat(self, system_prompt: str | None = None) -> list[dict]:
        """The prompt turns as chat messages, `system_prompt` first unless the row has its own."""
        return with_system_prompt([{"role": r, "content": c} for r, c in self.messages], system_prompt)


@dataclass
class InstructionBundle:
    train: list[Instruction]
    validation: list[Instruction]
    test: list[Instruction]
    labels: list[str] = field(default_factory=list)  # generation has none; the pipeline asks
    report: dict = field(default_factory=dict)

    def splits(self) -> dict[str, list[Instruction]]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def prepare_instructions(spec: DataSpec) -> InstructionBundle:
    s = spec.split
    train, validation, test, report = read_and_split(
        spec, read=lambda p: read_instructions(p, spec),
        split=lambda pairs, val, test: seeded_split(pairs, val, test, s.seed), key=_key, dedup=_deduplicate)
    words = [len(p.response.split()) for p in train + validation + test]
    report["response_words"] = {"median": statistics.median(words), "max": max(words)}
    return InstructionBundle(train, validation, test, report=report)


def read_instructions(path: Path, spec: DataSpec) -> list[Instruction]:
    fmt = detect_format(path, spec.format)
    if fmt != "jsonl":
        raise DataError(f"{path}: task: generation reads JSONL (one JSON object per line), not {fmt}")
    pairs = []
    for line, row in json_records(read_text(path, spec.encoding or "utf-8"), str(path)):
        where = f"{path} line {line}"
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        if spec.messages_column is not None:
            turns, response = _chat(row, spec.messages_column, where)
        else:
            turns = (("user", _text(row, spec.prompt_column, "data.prompt_column", where)),)
            response = _text(row, spec.response_column, "data.response_column", where)
        pairs.append(Instruction(turns, response, str(path), line))
    if not pairs:
        keys = f"{{{spec.messages_column!r}: [...]}}" if spec.messages_column else \
            f"{{{spec.prompt_column!r}: ..., {spec.response_column!r}: ...}}"
        raise DataError(f"{path}: holds no examples (read as data.format jsonl: one JSON object per line, "
                        f"{keys}); check data.path / data.train")
    return pairs


def _text(row: dict, key: str, field_name: str, where: str) -> str:
    if key not in row:
        raise DataError(f"{where}: no {key!r} field ({field_name}); the line has: {', '.join(row) or 'nothing'}")
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: {key!r} ({field_name}) must be a non-empty string")
    return value.strip()


def _chat(row: dict, key: str, where: str) -> tuple[tuple[tuple[str, str], ...], str]:
    messages = row.get(key)
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: {key!r} (data.messages_column) must be a non-empty list of "
                        '{"role": ..., "content": ...}')
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DataError(f"{where}: message {i} must be {{\"role\": one of {', '.join(ROLES)}, "
                            f"\"content\": text}}")
        turns.append((m["role"], m["content"].strip()))
    if turns[-1][0] != "assistant" or not turns[-1][1]:
        raise DataError(f"{where}: the last message must be the assistant's (non-empty): it is the "
                        "response to learn")
    if not any(role == "user" for role, _ in turns[:-1]):
        raise DataError(f"{where}: no user message before the response")
    return tuple(turns[:-1]), turns[-1][1]


def _key(pair: Instruction) -> tuple:
    return (pair.messages, pair.response)


def _deduplicate(pairs: list[Instruction]) -> tuple[list[Instruction], dict]:
    """Exact duplicate pairs (same prompt turns and response) kept once, first occurrence."""
    seen, kept = set(), []
    for p in pairs:
        if _key(p) not in seen:
            seen.add(_key(p))
            kept.append(p)
    return kept, {"duplicates_removed": len(pairs) - len(kept)}
