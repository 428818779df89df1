"""Long sentences for token classification: overlapping windows over words, and merging back.

A sentence whose subwords do not fit the model's window is cut at word boundaries into windows
that share about `stride` subwords with their neighbours. Each word is predicted by the window in
which it sits furthest from an edge (most context on both sides), so nothing is truncated.
"""
from __future__ import annotations


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
