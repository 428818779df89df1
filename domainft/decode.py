"""Logits -> predictions users see: labels with scores, regression values in the data's units, IOB2
entity spans with character offsets.
numpy only, so the trained model and the torch-free ONNX predictor decode identically."""
from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log(softmax(logits)) without its underflow to -inf for a very unlikely class."""
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def pool_rows(logits: np.ndarray, rows_of, how: str = "mean") -> np.ndarray:
    """One row of logits per example from the rows of its windows (`rows_of[i]`: the example of
    row i, rows of an example adjacent and examples in order): their mean, or max."""
    rows_of = np.asarray(rows_of)
    starts = np.flatnonzero(np.r_[True, rows_of[1:] != rows_of[:-1]])
    reduce = np.maximum if how == "max" else np.add
    pooled = reduce.reduceat(np.asarray(logits, dtype=np.float32), starts, axis=0)
    if how != "max":
        pooled /= np.diff(np.r_[starts, len(rows_of)])[:, None]
    return pooled


def label_scores(logits: np.ndarray, id2label: dict[int, str], choose=None) -> list[dict]:
    """[{'label', 'score', 'scores'}] per row, softmax probabilities; the label is the most
    probable one, or what `choose(probs) -> indices` picks (a decision rule)."""
    probs = softmax(np.asarray(logits, dtype=np.float32))
    picks = probs.argmax(-1) if choose is None else choose(probs)
    out = []
    for row, best in zip(probs, picks):
        best = int(best)
        out.append({"label": id2label[best], "score": float(row[best]),
                    "scores": {id2label[i]: float(v) for i, v in enumerate(row)}})
    return out


def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first_word, end_word) entities from IOB2 tags; an I-X that opens an entity (a model
    can predict one) starts it, as most decoders do."""
    out: list[tuple[str, int, int]] = []
    current: list | None = None
    for i, tag in enumerate(tags + ["O"]):
        prefix, _, etype = tag.partition("-")
        if current and (prefix != "I" or etype != current[0]):
            out.append((current[0], current[1], i))
            current = None
        if prefix in ("B", "I") and current is None:
            current = [etype, i]
    return out


def entities(words: list[str], starts: list[int], source: str, word_logits: np.ndarray,
             labels: list[str]) -> dict:
    """{'entities': [{'type', 'start', 'end', 'text', 'score'}], 'words', 'tags'} for one text; an
    entity's score is the mean probability of its words' tags."""
    if not len(word_logits):
        return {"entities": [], "words": words, "tags": []}
    probs = softmax(word_logits)
    tags = [labels[int(i)] for i in probs.argmax(-1)]
    scores = probs.max(-1)
    found = []
    for etype, a, b in spans(tags):
        start, end = starts[a], starts[b - 1] + len(words[b - 1])
        found.append({"type": etype, "start": start, "end": end, "text": source[start:end],
                      "score": float(np.mean(scores[a:b]))})
    return {"entities": found, "words": words, "tags": tags}


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Per-label probabilities of multi-label logits (numerically stable for large |logit|)."""
    x = np.asarray(logits, dtype=np.float32)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def label_thresholds(manifest: dict, labels: list[str]) -> np.ndarray:
    """task: multilabel: the decision threshold per label (label order) that the run stored in its
    manifest (`thresholds`: per-label `values`, else its `default`; 0.5 when it stores none)."""
    saved = manifest.get("thresholds") or {}
    values, default = saved.get("values") or {}, float(saved.get("default", 0.5))
    return np.array([float(values.get(label, default)) for label in labels], dtype=np.float32)


def multilabel_scores(logits: np.ndarray, labels: list[str], thresholds: np.ndarray) -> list[dict]:
    """[{'labels', 'scores'}] per row: the labels whose sigmoid probability reaches their threshold,
    most probable first (possibly none), and every label's probability."""
    probs = sigmoid(logits)
    out = []
    for row in probs:
        chosen = [i for i in np.argsort(-row, kind="stable") if row[i] >= thresholds[i]]
        out.append({"labels": [labels[i] for i in chosen],
                    "scores": {label: float(v) for label, v in zip(labels, row)}})
    return out


def target_values(outputs: np.ndarray, targets: dict) -> list[dict]:
    """Regression outputs -> [{'value': v}] per row for one target, [{'values': {name: v}}] for
    several, in the data's own units: `targets` is the manifest's entry ({'names', 'mean', 'std',
    'standardized'}); a model trained on standardized targets outputs (y - mean) / std."""
    values = destandardize(outputs, targets)
    names = targets["names"]
    if len(names) == 1:
        return [{"value": float(row[0])} for row in values]
    return [{"values": {name: float(v) for name, v in zip(names, row)}} for row in values]


def destandardize(outputs: np.ndarray, targets: dict) -> np.ndarray:
    """[rows, targets] float64 values in the data's units from the model's outputs."""
    out = np.asarray(outputs, dtype=np.float64).reshape(-1, len(targets["names"]))
    if not targets.get("standardized", True):
        return out
    return out * np.asarray(targets["std"], dtype=np.float64) + np.asarray(targets["mean"], dtype=np.float64)
