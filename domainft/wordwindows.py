"""Words and windows for token classification, in plain Python and numpy (no torch, no
transformers): the trained model and the ONNX predictor (domainft.serving) share them.

Free text is split into words the way biomedical and CoNLL corpora are. A sentence whose subwords
do not fit the model's window is cut at word boundaries into windows that share about `stride`
subwords with their neighbours; each word is predicted by the window in which it sits furthest from
an edge (most context on both sides), so nothing is truncated.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

# Runs of letters/digits, and each other non-space character alone ("Selegiline-induced" ->
# Selegiline, -, induced).
WORD = re.compile(r"\w+|[^\w\s]")


def words_with_offsets(text) -> tuple[list[str], list[int], str]:
    """(words, start offsets, source text). A list of words is taken as given; offsets then index
    the words joined by single spaces."""
    if isinstance(text, (list, tuple)):
        words = [str(w) for w in text]
        starts, pos = [], 0
        for w in words:
            starts.append(pos)
            pos += len(w) + 1
        return words, starts, " ".join(words)
    matches = list(WORD.finditer(text))
    return [m.group() for m in matches], [m.start() for m in matches], text


def plan_windows(word_lengths: list[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """[(first_word, end_word)] windows covering every word; each holds at most `budget` subwords
    (a single word longer than that gets a window of its own and is cut by the caller)."""
    n = len(word_lengths)
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and (used + word_lengths[end] <= budget or end == start):
            used += word_lengths[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            return windows
        # Step back from `end` until about `stride` subwords are shared; always advance.
        nxt, shared = end, 0
        while nxt - 1 > start and shared + word_lengths[nxt - 1] <= stride:
            nxt -= 1
            shared += word_lengths[nxt]
        # A window that could not reach past `end` would repeat words only: start fresh at `end`.
        start = max(nxt, start + 1) if shared + word_lengths[end] <= budget else end


def best_window(windows: list[tuple[int, int]]) -> list[int]:
    """For each word, the index of the window where it has the most context on both sides."""
    n = windows[-1][1]
    best = [0] * n
    score = [-1] * n
    for w, (start, end) in enumerate(windows):
        for i in range(start, end):
            s = min(i - start, end - 1 - i)
            if s > score[i]:
                best[i], score[i] = w, s
    return best


def window_inputs(pieces: list[list[int]], budget: int, stride: int, wrap: Callable[[list[int]], list[int]],
                  before: int) -> list[tuple[list[int], list[int]]]:
    """[(input_ids, word_index)] per window from each word's subword ids. `wrap` adds the special
    tokens, `before` of them ahead of the body; word_index[p] is the word whose first subword sits
    at position p, or -1 (special token, later subword)."""
    out = []
    for a, b in plan_windows([len(p) for p in pieces], budget, stride):
        body, index = [], []
        for i in range(a, b):
            piece = pieces[i][:budget]  # only a single word longer than the window is ever cut
            body += piece
            index += [i] + [-1] * (len(piece) - 1)
        ids = wrap(body)
        word_index = [-1] * before + index
        word_index += [-1] * (len(ids) - len(word_index))
        out.append((ids, word_index))
    return out


def merge_windows(logits: np.ndarray, sentence_of, word_index, n_sentences: int | None = None) -> list[np.ndarray]:
    """Per sentence, an array [words, labels] of logits, each word taken from its best window."""
    n_sentences = n_sentences if n_sentences is not None else (max(sentence_of) + 1 if len(sentence_of) else 0)
    by_sentence: list[list[int]] = [[] for _ in range(n_sentences)]
    for row, k in enumerate(sentence_of):
        by_sentence[k].append(row)
    out = []
    for rows in by_sentence:
        extents = [(min(i for i in word_index[r] if i >= 0), max(word_index[r]) + 1) for r in rows]
        n_words = extents[-1][1] if extents else 0
        words = np.zeros((n_words, logits.shape[-1]), dtype=np.float32)
        best = best_window(extents) if extents else []
        for w, r in enumerate(rows):
            for pos, i in enumerate(word_index[r]):
                if i >= 0 and best[i] == w:
                    words[i] = logits[r, pos]
        out.append(words)
    return out


def special_prefix_length(tokenizer) -> int:
    """How many special tokens a (transformers) tokenizer puts before a sequence's body ([CLS]: 1)."""
    marker = -7  # an id no vocabulary uses: find where the body starts among the special tokens
    return tokenizer.build_inputs_with_special_tokens([marker]).index(marker)
