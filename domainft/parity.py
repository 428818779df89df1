"""The export's parity gate: ONNX logits against PyTorch's on the run's validation set, and the
validation quality an int8 model keeps."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_ABS_DIFF = 1e-4  # fp32 ONNX vs PyTorch logits; above it the export is refused


@dataclass
class Batches:
    """The validation set as padded numpy batches, fed identically to PyTorch and ONNX Runtime."""

    feeds: list[dict[str, np.ndarray]]

    @classmethod
    def of(cls, dataset, input_names: list[str], pad_id: int, batch_size: int = 32) -> Batches:
        from domainft.serving import pad

        feeds = []
        for start in range(0, len(dataset), batch_size):
            rows = dataset[start:start + batch_size]
            ids = rows["input_ids"]
            columns = {"input_ids": pad(ids, pad_id),
                       "attention_mask": pad(rows.get("attention_mask") or [[1] * len(r) for r in ids], 0),
                       "token_type_ids": pad(rows.get("token_type_ids") or [[0] * len(r) for r in ids], 0)}
            feeds.append({name: columns[name] for name in input_names})
        return cls(feeds)

    @classmethod
    def rows(cls, dataset, input_names: list[str], limit: int) -> Batches:
        """Up to `limit` examples of `dataset`, evenly spaced, one unpadded example per feed: static
        int8's calibration set (padding never enters the activation ranges)."""
        n = len(dataset)
        picks = sorted({int(i) for i in np.linspace(0, n - 1, min(limit, n)).round()}) if n else []
        return cls.of(dataset.select(picks), input_names, 0, batch_size=1)

    def torch_logits(self, model) -> list[np.ndarray]:
        import torch

        model.eval()
        out = []
        with torch.inference_mode():
            for feed in self.feeds:
                logits = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits
                out.append(logits.float().cpu().numpy())
        return out

    def onnx_logits(self, session) -> list[np.ndarray]:
        return [session.run(["logits"], feed)[0] for feed in self.feeds]

    def max_abs_diff(self, a: list[np.ndarray], b: list[np.ndarray]) -> float:
        """Largest logit difference over real tokens (padding positions are not predictions)."""
        worst = 0.0
        for feed, x, y in zip(self.feeds, a, b):
            diff = np.abs(x - y)
            if diff.ndim == 3:  # token classification: [batch, tokens, labels]
                diff = diff[feed["attention_mask"].astype(bool)]
            worst = max(worst, float(diff.max(initial=0.0)))
        return worst


def stack(per_batch: list[np.ndarray]) -> np.ndarray:
    """One array from per-batch logits; token logits are padded to the widest batch (the fill is
    never read: only positions of real words are)."""
    if per_batch[0].ndim == 2:
        return np.concatenate(per_batch)
    width = max(b.shape[1] for b in per_batch)
    return np.concatenate([np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=-100.0)
                           for b in per_batch])


def quality(task, per_batch: list[np.ndarray], dataset, labels: list[str]) -> dict[str, float]:
    """The task's gate metrics for these logits on the validation set."""
    # Token tasks read their gold tags (and windows) from the dataset itself.
    gold = None if task.words_as_input else np.asarray(dataset["labels"])
    report = task.report(stack(per_batch), gold, labels, dataset)
    return {name: round(float(report[name]), 6) for name in task.gate_metrics}


def drop_points(reference: dict[str, float], candidate: dict[str, float]) -> float:
    """The largest loss, in points (0-100), over the gate metrics; negative if all improved."""
    return round(max(100 * (reference[k] - candidate[k]) for k in reference), 4)
