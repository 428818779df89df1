"""Inference batches of similar length (torch-free: the trained model and the ONNX predictor share it)."""
from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from domainft.textinputs import chars

T = TypeVar("T")


def length_batches(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indices of `texts` in batches of similar character length, longest first. A batch is padded
    to its longest text, so on mixed lengths unsorted batches spend much of their time on padding."""
    order = sorted(range(len(texts)), key=lambda i: -chars(texts[i]))
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def predict_sorted(texts: Sequence[str], batch_size: int, predict_batch: Callable[[list[str]], list[T]]) -> list[T]:
    """predict_batch over length-sorted batches, results back in the order of `texts`."""
    results: list = [None] * len(texts)
    for batch in length_batches(texts, batch_size):
        for i, result in zip(batch, predict_batch([texts[i] for i in batch])):
            results[i] = result
    return results
