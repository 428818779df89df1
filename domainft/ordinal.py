"""Ordered labels (`data.ordinal`, listed from most to least severe): under/over rates and the
escalation rule (`decision.escalate_threshold`) that trades over-prediction for less under-prediction,
or its threshold chosen on validation for a wanted under rate (`decision.max_under_rate`).

numpy only, like decode.py: a trained model and a reloaded one decide alike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Thresholds the validation report sweeps so the rule can be chosen on validation, never test;
# 1.0 is the plain most-probable label.
SWEEP = (1.0, 0.5, 0.4, 0.3, 0.2, 0.1)
# Thresholds tried, least escalation first, when the run chooses one for decision.max_under_rate.
FINE_SWEEP = tuple(round(1.0 - 0.05 * i, 2) for i in range(20))


@dataclass(frozen=True)
class Decision:
    """How a label is chosen from probabilities; stored in the model manifest as `decision`."""

    ordinal: bool = False
    escalate_threshold: float | None = None
    max_under_rate: float | None = None  # what the threshold was chosen for on validation, if it was

    @classmethod
    def from_recipe(cls, recipe) -> Decision:
        return cls(recipe.data.ordinal, recipe.decision.escalate_threshold, recipe.decision.max_under_rate)

    @classmethod
    def from_manifest(cls, manifest: dict) -> Decision:
        saved = manifest.get("decision") or {}
        return cls(bool(saved.get("ordinal")), saved.get("escalate_threshold"), saved.get("max_under_rate"))

    def to_manifest(self) -> dict:
        out = {"ordinal": self.ordinal, "escalate_threshold": self.escalate_threshold}
        return {**out, "max_under_rate": self.max_under_rate} if self.max_under_rate is not None else out

    def choose(self, probs: np.ndarray) -> np.ndarray:
        """Label index per row."""
        if self.escalate_threshold is None:
            return np.asarray(probs).argmax(-1)
        return escalate(probs, self.escalate_threshold)


def escalate(probs: np.ndarray, threshold: float) -> np.ndarray:
    """The most severe label whose cumulative probability (it and every more severe label) reaches
    `threshold`, but never less severe than the most probable label. threshold 1.0 = argmax."""
    probs = np.asarray(probs, dtype=np.float64)
    reach = probs.cumsum(-1) >= threshold
    reach[..., -1] = True  # all labels together are 1 up to rounding
    return np.minimum(probs.argmax(-1), reach.argmax(-1))


def severity_rates(y_true, y_pred) -> dict[str, float]:
    """Shares predicted less severe (under) and more severe (over) than gold; index 0 = most severe."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if not len(y_true):
        return {"under_triage": 0.0, "over_triage": 0.0}
    return {"under_triage": float(np.mean(y_pred > y_true)), "over_triage": float(np.mean(y_pred < y_true))}


def threshold_for_under_rate(probs: np.ndarray, y_true, max_under: float) -> tuple[float, float]:
    """(threshold, its under rate): the least escalation of FINE_SWEEP whose under rate on these
    labelled examples is at most `max_under`; the most escalation if none reaches it."""
    for threshold in FINE_SWEEP:
        under = severity_rates(y_true, escalate(probs, threshold))["under_triage"]
        if under <= max_under:
            break
    return threshold, under
