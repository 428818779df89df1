"""Multi-label text classification: any number of labels per text (none included).

The head is classification's (AutoModelForSequenceClassification) with problem_type
"multi_label_classification", stored in config.json: one sigmoid per label, binary cross-entropy on
logits (with optional positive-class weights, train.class_weights). A label is predicted when its
probability reaches its decision threshold, chosen on validation (decision.thresholds: one global
threshold maximizing micro-F1, or one per label maximizing each label's F1) unless fixed
(decision.threshold), stored with the model and used on test, by predict and by the ONNX bundle.
Data: domainft/data/multilabel.py.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from domainft.batching import predict_sorted
from domainft.data import DataBundle, Example
from domainft.data.multilabel import prepare_multilabel
from domainft.data.readers import FORMATS
from domainft.decode import label_thresholds, multilabel_scores, sigmoid
from domainft.errors import RecipeError
from domainft.schema import field_error
from domainft.tasks.base import Task, register_task
from domainft.tasks.classification import FIELDS as CLASSIFICATION_FIELDS
from domainft.tasks.classification import ClassificationTask, encode_inputs, input_settings, pool_windows

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

# Classification's fields but those about one label per text; and the label-set fields.
FIELDS = (CLASSIFICATION_FIELDS - {"data.ordinal", "data.reference_column", "data.label_names",
                                   "train.label_smoothing", "decision.escalate_threshold",
                                   "decision.max_under_rate"}) \
    | {"data.label_delimiter", "data.label_columns", "decision.threshold", "decision.thresholds"}
# Thresholds tried when the run chooses them on validation.
GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
DEFAULT_THRESHOLD = 0.5


@register_task("multilabel")
class MultiLabelTask(ClassificationTask):
    metric_names = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "loss")
    default_metric = "micro_f1"
    summary_columns = [("micro-F1", "micro_f1"), ("macro-F1", "macro_f1"), ("samples-F1", "samples_f1"),
                       ("exact match", "subset_accuracy")]
    gate_metrics = ("micro_f1", "macro_f1")
    long_input_note = "truncated to data.max_length tokens"
    data_formats = tuple(f for f in FORMATS if f != "phrasebank")
    fields = FIELDS
    window_pooling = "max"  # a label present in any window of a long text is present in the text

    # --- the recipe ------------------------------------------------------------------------

    def check_recipe(self, recipe) -> None:
        Task.check_recipe(self, recipe)  # classification's ordinal checks do not apply
        d, decision = recipe.data, recipe.decision
        if d.label_columns and d.label_delimiter is not None:
            raise field_error("data.label_delimiter", "labels come from data.label_columns (one 0/1 column "
                              "per label) or from one label column split at data.label_delimiter, not both")
        if d.label_columns and d.labels is not None:
            raise field_error("data.labels", "with data.label_columns the columns are the labels, in their "
                              "order; leave data.labels out")
        if d.label_columns and len(d.label_columns) < 2:
            raise field_error("data.label_columns", "list two or more label columns (one 0/1 column per label)")
        if d.wide.multi_category not in (None, "keep"):
            raise field_error("data.wide.multi_category", f"{d.wide.multi_category} would give each excerpt "
                              "one category; task: multilabel keeps all of them (keep, the default): leave "
                              "it unset")
        if decision.threshold is not None and decision.thresholds is not None:
            raise field_error("decision.thresholds", "set either it (the run chooses thresholds on validation) "
                              "or decision.threshold (fixed), not both")
        known = list(d.label_columns) or d.labels
        if known is not None:
            setting = "data.label_columns" if d.label_columns else "data.labels"
            for where, given in (("train.class_weights", recipe.train.class_weights),
                                 ("decision.threshold", decision.threshold)):
                unknown = sorted(set(given) - set(known)) if isinstance(given, dict) else []
                if unknown:
                    raise field_error(where, f"{', '.join(map(repr, unknown))} not in {setting}")

    # --- data and encoding -------------------------------------------------------------------

    def load_data(self, spec: DataSpec) -> DataBundle:
        return prepare_multilabel(spec)

    def model_kwargs(self, labels: list[str]) -> dict:
        return {**super().model_kwargs(labels), "problem_type": "multi_label_classification"}

    def encode(self, examples: list[Example], tokenizer, label2id: dict[str, int], spec: DataSpec):
        """Model inputs and, per encoded row, the multi-hot float vector of its example's labels."""
        from datasets import Dataset

        columns, rows_of = encode_inputs(examples, tokenizer, spec)
        hot = [multi_hot(e.labels, label2id) for e in examples]
        columns["labels"] = [hot[i] for i in rows_of]
        return Dataset.from_dict(columns)

    # --- the loss ----------------------------------------------------------------------------

    def label_counts(self, train: list[Example]) -> Counter:
        return Counter(label for e in train for label in e.labels)

    def class_weights(self, train, labels: list[str], setting) -> list[float] | None:
        """BCE pos_weight per label: 'balanced' = negatives / positives in train (as
        torch.nn.BCEWithLogitsLoss documents it), or {label: weight} (others 1)."""
        if setting == "none":
            return None
        if setting == "balanced":
            counts = self.label_counts(train)
            # At least 1 negative: a label on every training text would otherwise get weight 0.
            return [max(len(train) - counts[label], 1) / max(counts[label], 1) for label in labels]
        return [float(setting.get(label, 1.0)) for label in labels]

    def eval_hook(self, recipe, data):
        """No hook; but the labels are known now (read from the data when the recipe lists none):
        label names in train.class_weights and decision.threshold must be among them."""
        for where, given in (("train.class_weights", recipe.train.class_weights),
                             ("decision.threshold", recipe.decision.threshold)):
            unknown = sorted(set(given) - set(data.labels)) if isinstance(given, dict) else []
            if unknown:
                raise RecipeError([f"{where}: {', '.join(map(repr, unknown))} not among the labels of the data "
                                   f"({', '.join(data.labels)})"])
        return None

    def loss_function(self, weights: list[float] | None, smoothing: float = 0.0):
        """None (the model's own BCE-with-logits) or BCE with per-label positive weights."""
        if weights is None:
            return None
        import torch

        pos_weight = torch.tensor(weights, dtype=torch.float32)

        def weighted_bce(outputs, labels, num_items_in_batch=None):
            logits = outputs["logits"]
            return torch.nn.functional.binary_cross_entropy_with_logits(
                logits, labels.to(logits.dtype), pos_weight=pos_weight.to(logits.device))

        return weighted_bce

    # --- evaluation --------------------------------------------------------------------------

    def metrics_for(self, dataset, labels: list[str]):
        """Scalar metrics at the global threshold best for this evaluation (as the run will choose one
        on validation after training), and that threshold. At a fixed 0.5, 37 rare labels on CUAD
        gave micro-F1 0.0 after the first epoch (every probability still below 0.5): early
        stopping would compare zeros and stop on them."""
        def compute(eval_pred):
            logits, y_true = pool_windows(np.asarray(eval_pred.predictions), eval_pred.label_ids, dataset,
                                          how=self.window_pooling)
            probs, y = sigmoid(logits), gold(y_true)
            threshold = best_threshold(probs, y)
            return {**scalar_metrics(y, probs >= threshold), "threshold": threshold}
        return compute

    def fit_decision(self, recipe, logits, y_true, dataset=None, labels=None) -> tuple:
        """The thresholds chosen on validation (unless decision.threshold fixes them), written into
        the recipe's decision.threshold: a number (global) or {label: threshold} (per_label)."""
        decision = recipe.decision
        if decision.threshold is not None:
            return recipe, None
        logits, y_true = pool_windows(np.asarray(logits), y_true, dataset, how=self.window_pooling)
        probs, y = sigmoid(logits), gold(y_true)
        rule = decision.thresholds or "global"
        if rule == "per_label":
            names = labels or [str(i) for i in range(probs.shape[1])]
            chosen = {label: best_threshold(probs[:, [i]], y[:, [i]]) for i, label in enumerate(names)}
            note = ("decision: per-label thresholds chosen on validation (each label's F1): "
                    + ", ".join(f"{k} {v:g}" for k, v in chosen.items()))
        else:
            chosen = best_threshold(probs, y)
            note = (f"decision: threshold {chosen:g} chosen on validation (micro-F1 "
                    f"{scalar_metrics(y, probs >= chosen)['micro_f1']:.4f})")
        # Both fields set in the run's copy (never validated again): the threshold, and how it was chosen.
        update = {"decision": decision.model_copy(update={"threshold": chosen, "thresholds": rule})}
        return recipe.model_copy(update=update), note

    def evaluate(self, logits, y_true, labels: list[str], dataset, examples, recipe, split: str) -> dict:
        out = self.report(logits, y_true, labels, dataset, thresholds_of(recipe, labels))
        out["thresholds"] = {"rule": decision_rule(recipe),
                             "values": {k: round(float(v), 6) for k, v in zip(labels, thresholds_of(recipe, labels))}}
        if split == "validation":
            pooled, y = pool_windows(np.asarray(logits), y_true, dataset, how=self.window_pooling)
            probs, y = sigmoid(pooled), gold(y)
            out["threshold_sweep"] = [{"threshold": t, **{k: v for k, v in scalar_metrics(y, probs >= t).items()
                                                          if k in ("micro_f1", "macro_f1")}} for t in GRID]
        return out

    def report(self, logits, y_true, labels: list[str], dataset=None, thresholds=None) -> dict:
        """micro / macro / samples F1, exact match, per-label precision / recall / F1 / support, and
        how many gold and predicted label sets are empty, at `thresholds` (default 0.5)."""
        from sklearn.metrics import precision_recall_fscore_support

        logits, y_true = pool_windows(np.asarray(logits), y_true, dataset, how=self.window_pooling)
        y = gold(y_true)
        t = np.full(len(labels), DEFAULT_THRESHOLD, dtype=np.float32) if thresholds is None else thresholds
        pred = sigmoid(logits) >= np.asarray(t, dtype=np.float32)
        p, r, f, s = precision_recall_fscore_support(y, pred, average=None, labels=list(range(len(labels))),
                                                     zero_division=0)
        return {
            **scalar_metrics(y, pred),
            "n": int(len(y)),
            "empty_gold": int((~y.any(1)).sum()),
            "empty_predicted": int((~pred.any(1)).sum()),
            "labels_per_example": {"gold": round(float(y.sum(1).mean()), 4) if len(y) else 0.0,
                                   "predicted": round(float(pred.sum(1).mean()), 4) if len(y) else 0.0},
            "per_class": {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                  "support": int(s[i])} for i, label in enumerate(labels)},
        }

    def manifest_extras(self, recipe) -> dict:
        """`thresholds`: {'rule': fixed / global / per_label, 'default', 'values': {label: threshold}}
        (decode.label_thresholds reads it, in domainft and in the ONNX bundle)."""
        t = recipe.decision.threshold
        return {"text_inputs": input_settings(recipe.data, self.window_pooling),
                "thresholds": {"rule": decision_rule(recipe),
                               "default": float(t) if isinstance(t, (int, float)) else DEFAULT_THRESHOLD,
                               "values": {k: float(v) for k, v in t.items()} if isinstance(t, dict) else {}}}

    # --- prediction --------------------------------------------------------------------------

    def predict(self, trained, texts, batch_size: int = 32) -> list[dict]:
        """[{'labels': [...], 'scores': {label: probability}}] per text: the labels whose probability
        reaches the run's threshold, most probable first. Long texts are read as in training."""
        texts = trained.inputs(texts)
        labels = trained.labels
        thresholds = label_thresholds(trained.manifest, labels)
        return predict_sorted(texts, batch_size,
                              lambda batch: multilabel_scores(trained.logits(batch), labels, thresholds))


def multi_hot(labels: tuple[str, ...], label2id: dict[str, int]) -> list[float]:
    row = [0.0] * len(label2id)
    for label in labels:
        row[label2id[label]] = 1.0
    return row


def gold(y_true) -> np.ndarray:
    return np.asarray(y_true) >= 0.5


def scalar_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """micro_f1, macro_f1, samples_f1 (mean per-text F1; a text with no gold and no predicted labels
    scores 1) and subset_accuracy (the predicted set is exactly the gold one)."""
    from sklearn.metrics import f1_score

    y, pred = np.asarray(y, dtype=bool), np.asarray(pred, dtype=bool)
    if not len(y):
        return {"micro_f1": 0.0, "macro_f1": 0.0, "samples_f1": 0.0, "subset_accuracy": 0.0}
    both, sizes = (y & pred).sum(1), y.sum(1) + pred.sum(1)
    per_text = np.where(sizes == 0, 1.0, 2 * both / np.maximum(sizes, 1))
    return {"micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
            "samples_f1": float(per_text.mean()),
            "subset_accuracy": float((y == pred).all(1).mean())}


def best_threshold(probs: np.ndarray, y: np.ndarray) -> float:
    """The GRID threshold with the best micro-F1 over these label columns (ties: the one nearest
    0.5); 0.5 when no threshold finds a true positive (e.g. a label without validation positives)."""
    scores = [(scalar_metrics(y, probs >= t)["micro_f1"], -abs(t - DEFAULT_THRESHOLD), t) for t in GRID]
    best = max(scores)
    return DEFAULT_THRESHOLD if best[0] == 0 else best[2]


def thresholds_of(recipe, labels: list[str]) -> np.ndarray:
    """decision.threshold as one threshold per label (0.5 where unset)."""
    t = recipe.decision.threshold
    if isinstance(t, dict):
        return np.array([float(t.get(label, DEFAULT_THRESHOLD)) for label in labels], dtype=np.float32)
    return np.full(len(labels), DEFAULT_THRESHOLD if t is None else float(t), dtype=np.float32)


def decision_rule(recipe) -> str:
    """fixed (decision.threshold in the recipe), or global / per_label (chosen on validation: then
    fit_decision set both fields in the run's copy of the recipe)."""
    d = recipe.decision
    if d.thresholds is None:
        return "fixed" if d.threshold is not None else "global"
    return d.thresholds
