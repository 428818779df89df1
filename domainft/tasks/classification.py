"""Single-label text classification: sequence-classification head, accuracy / F1 metrics."""
from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from domainft.batching import predict_sorted
from domainft.data import DataBundle, Example, prepare_examples
from domainft.data.readers import FORMATS
from domainft.decode import label_scores, pool_rows, softmax
from domainft.errors import DataError
from domainft.ordinal import SWEEP, Decision, escalate, severity_rates, threshold_for_under_rate
from domainft.schema import field_error
from domainft.tasks.base import Task, register_task
from domainft.textinputs import tokenize

# Words as a lexicon sees them: letters and digits, hyphenated compounds kept whole.
WORDS = re.compile(r"\w+(?:-\w+)*")

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

# Recipe fields that only text classification reads (tasks/base.py, Task.fields).
FIELDS = frozenset({"data.text_column", "data.text_template", "data.label_column", "data.labels", "data.label_names",
                    "data.columns", "data.duplicates", "data.text_pair_column", "data.text_pair_template",
                    "data.long_inputs", "data.stride", "data.hub",
                    "data.leak_columns", "data.reference_column", "data.missing_values", "data.delimiter",
                    "data.ordinal", "data.split.group_column", "decision.escalate_threshold",
                    "decision.max_under_rate",
                    "lexicon", "train.class_weights", "train.label_smoothing", "export.enabled"})


@register_task("classification")
class ClassificationTask(Task):
    metric_names = ("accuracy", "macro_f1", "micro_f1", "weighted_f1", "loss")
    default_metric = "macro_f1"
    peft_task_type = "SEQ_CLS"
    long_input_note = "truncated to data.max_length tokens"
    window_pooling = "mean"  # data.long_inputs: windows: how a text's window logits become one
    summary_columns = [("accuracy", "accuracy"), ("macro-F1", "macro_f1")]
    gate_metrics = ("accuracy", "macro_f1")
    data_formats = FORMATS
    fields = FIELDS

    def check_recipe(self, recipe) -> None:
        super().check_recipe(recipe)
        decision = recipe.decision
        for name in ("escalate_threshold", "max_under_rate"):
            if getattr(decision, name) is not None and not recipe.data.ordinal:
                raise field_error(f"decision.{name}", "needs ordered labels: set data.ordinal: "
                                  "true and list data.labels from the most to the least severe")
        if decision.escalate_threshold is not None and decision.max_under_rate is not None:
            raise field_error("decision.max_under_rate", "set either it (the run chooses the threshold "
                              "on validation) or decision.escalate_threshold (a fixed one), not both")
        if recipe.data.wide.multi_category == "keep":
            raise field_error("data.wide.multi_category", "keep (one example with all its categories) "
                              "applies to task: multilabel; for one label per example choose drop or first")

    @property
    def model_class(self):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def load_data(self, spec: DataSpec) -> DataBundle:
        bundle = prepare_examples(spec)
        if spec.reference_column:
            everything = bundle.train + bundle.validation + bundle.test
            for ex in everything:
                if ex.reference is not None and ex.reference not in bundle.labels:
                    raise DataError(f"{ex.where}: {spec.reference_column} (data.reference_column) holds "
                                    f"{ex.reference!r}, not one of the labels ({', '.join(bundle.labels)}); "
                                    "fix the cell or list it in data.missing_values")
            # The whole file: the reference rater's published agreement should reappear here.
            bundle.report["reference"] = reference_scores(everything, bundle.labels, spec)
        return bundle

    def words(self, examples: list[Example]) -> list[str]:
        return [w for e in examples for w in WORDS.findall(e.text)]

    def encode(self, examples: list[Example], tokenizer, label2id: dict[str, int], spec: DataSpec):
        """Tokenize without padding (the collator pads each batch to its own longest text)."""
        from datasets import Dataset

        columns, rows_of = encode_inputs(examples, tokenizer, spec)
        columns["labels"] = [label2id[examples[i].label] for i in rows_of]
        return Dataset.from_dict(columns)

    def long_inputs(self, spec: DataSpec) -> str:
        if spec.long_inputs == "windows":
            return (f"read in overlapping windows (data.max_length, data.stride), logits pooled by "
                    f"{self.window_pooling}")
        return self.long_input_note + (" (longest first)" if spec.has_pairs else "")

    def count_truncated(self, examples: list[Example], tokenizer, spec: DataSpec, encoded) -> int:
        return sum(encoded["truncated"])

    def per_example(self, predictions, label_ids, dataset):
        return pool_windows(predictions, label_ids, dataset, self.window_pooling)

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def label_counts(self, train: list[Example]) -> Counter:
        return Counter(e.label for e in train)

    def metrics_for(self, dataset, labels: list[str]):
        """The scalar metrics the Trainer logs and early stopping reads (loss comes from Trainer)."""
        def compute(eval_pred):
            logits, y_true = self.per_example(eval_pred.predictions, eval_pred.label_ids, dataset)
            return _scalar_metrics(y_true, np.asarray(logits).argmax(-1))

        return compute

    def fit_decision(self, recipe, logits, y_true, dataset=None, labels=None) -> tuple:
        """decision.max_under_rate: the escalation threshold chosen on validation, per run (a fixed
        threshold suits one model's calibration, not every seed's)."""
        target = recipe.decision.max_under_rate
        if target is None:
            return recipe, None
        probs = softmax(np.asarray(logits, dtype=np.float32))
        threshold, under = threshold_for_under_rate(probs, np.asarray(y_true), target)
        chosen = recipe.model_copy(update={"decision": recipe.decision.model_copy(
            update={"escalate_threshold": threshold})})
        note = (f"decision: escalate_threshold {threshold:g} chosen on validation (under rate {under:.3f}, "
                f"decision.max_under_rate {target:g})")
        if under > target:
            note += "; not reached even at the lowest threshold tried"
        return chosen, note

    def evaluate(self, logits, y_true, labels: list[str], dataset, examples, recipe, split: str) -> dict:
        """report() under the recipe's decision rule; with ordinal labels the under/over rates (on
        validation also per escalation threshold); the reference rater on the same examples."""
        decision = Decision.from_recipe(recipe)
        out = self.report(logits, y_true, labels, dataset, decision)
        if decision.ordinal:
            out["decision"] = decision.to_manifest()
            if split == "validation":
                out["escalation_sweep"] = escalation_sweep(logits, y_true, decision.escalate_threshold)
        if recipe.data.reference_column:
            assert len(examples) == len(y_true), "predictions and examples out of step"
            out["reference"] = reference_scores(examples, labels, recipe.data)
        return out

    def manifest_extras(self, recipe) -> dict:
        extras = {"text_inputs": input_settings(recipe.data, self.window_pooling)}
        if recipe.data.ordinal:
            extras["decision"] = Decision.from_recipe(recipe).to_manifest()
        return extras

    def report(self, logits: np.ndarray, y_true: np.ndarray, labels: list[str], dataset=None,
               decision: Decision | None = None) -> dict:
        """Full evaluation: scalar metrics, per-class precision/recall/F1, confusion matrix; with
        an ordinal decision also the under/over rates."""
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        logits, y_true = pool_windows(logits, y_true, dataset, self.window_pooling)
        decision = decision or Decision()
        y_pred = decision.choose(softmax(np.asarray(logits, dtype=np.float32)))
        ids = list(range(len(labels)))
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
        return {
            **_scalar_metrics(y_true, y_pred),
            "n": int(len(y_true)),
            "per_class": {
                label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                for i, label in enumerate(labels)
            },
            "confusion_matrix": {
                "labels": labels,  # rows: true label, columns: predicted label
                "matrix": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
            },
            **(severity_rates(y_true, y_pred) if decision.ordinal else {}),
        }

    def predict(self, trained, texts, batch_size: int = 32) -> list[dict]:
        """[{'label', 'score', 'scores'}] per text (or text pair), long ones read as in training."""
        texts = trained.inputs(texts)
        id2label = dict(enumerate(trained.labels))
        decision = Decision.from_manifest(trained.manifest)  # the rule the run was evaluated with
        return predict_sorted(texts, batch_size,
                              lambda batch: self.decode(trained.logits(batch), id2label, decision))

    def decode(self, logits: np.ndarray, id2label: dict[int, str], decision: Decision | None = None) -> list[dict]:
        """Logits -> [{'label', 'score', 'scores'}] with softmax probabilities; the label is the
        most probable one unless the decision rule escalates it."""
        return label_scores(logits, id2label, decision.choose if decision else None)


def _scalar_metrics(y_true, y_pred) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        # Equals accuracy for single-label classes; reported because clause-typing anchors (LEDGAR) use it.
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }


def escalation_sweep(logits, y_true, chosen: float | None = None) -> list[dict]:
    """Accuracy, macro-F1 and under/over rates per escalation threshold (choose on validation)."""
    probs = softmax(np.asarray(logits, dtype=np.float32))
    rows = []
    for threshold in sorted({*SWEEP, *([chosen] if chosen else [])}, reverse=True):
        y_pred = escalate(probs, threshold)
        scores = _scalar_metrics(y_true, y_pred)
        rows.append({"escalate_threshold": threshold, "accuracy": scores["accuracy"],
                     "macro_f1": scores["macro_f1"], **severity_rates(y_true, y_pred)})
    return rows


def reference_scores(examples: list[Example], labels: list[str], spec: DataSpec) -> dict:
    """The reference rater (data.reference_column) scored like the model, on the examples that
    have a reference label."""
    index = {label: i for i, label in enumerate(labels)}
    rated = [e for e in examples if e.reference is not None]
    y_true = np.array([index[e.label] for e in rated], dtype=int)
    y_ref = np.array([index[e.reference] for e in rated], dtype=int)
    scores = _scalar_metrics(y_true, y_ref) if rated else {}
    return {"column": spec.reference_column, "n": len(rated), **scores,
            **(severity_rates(y_true, y_ref) if spec.ordinal else {})}


def encode_inputs(examples: list[Example], tokenizer, spec: DataSpec) -> tuple[dict, list[int]]:
    """The model inputs of `examples` (unpadded) and, per encoded row, the index of its example:
    the tasks over texts (classification, multilabel, regression) share this and add `labels`.

    A text pair is tokenized as one (segment ids), truncated longest-first. With data.long_inputs:
    windows a long input becomes several rows of max_length tokens sharing data.stride tokens (over
    the second text of a pair, the first kept whole in each); column `example` then maps rows to
    examples (pool_windows). `truncated` is not a model input (the Trainer drops it from batches):
    per example, on its first row, whether it was cut (truncate) or split into windows."""
    texts = [e.text for e in examples]
    pairs = [e.pair for e in examples] if spec.has_pairs else None
    enc = tokenize(tokenizer, texts, pairs, spec.max_length, spec.long_inputs == "windows", spec.stride)
    columns = {k: v for k, v in enc.items() if k != "overflow_to_sample_mapping"}
    if spec.long_inputs == "windows":
        rows_of = list(enc["overflow_to_sample_mapping"])
        columns["example"] = rows_of
        first = [i == 0 or rows_of[i - 1] != r for i, r in enumerate(rows_of)]
        windows = Counter(rows_of)
        columns["truncated"] = [f and windows[r] > 1 for f, r in zip(first, rows_of)]
        return columns, rows_of
    columns["truncated"] = _truncated(enc, tokenizer, texts, pairs, spec.max_length)
    return columns, list(range(len(examples)))


def input_settings(spec: DataSpec, pooling: str) -> dict:
    """How predict and the bundle read an input as training did (the model manifest's `text_inputs`)."""
    from domainft.records import records_manifest

    records = records_manifest(spec)  # texts built from columns: predict renders new rows alike
    return {"text_pair": spec.has_pairs, "long_inputs": spec.long_inputs, "window_pooling": pooling,
            **({"records": records} if records else {})}


def pool_windows(logits: np.ndarray, y_true, dataset, how: str = "mean"):
    """(per-example logits, per-example gold) from per-row ones: a long text encoded as several
    windows (data.long_inputs: windows) has one row per window, pooled here by `how` (the mean of
    the logits; max for multi-label: a label is present if some window shows it). Rows and examples
    are one to one without windows; already pooled arrays pass through."""
    if dataset is None or "example" not in dataset.column_names or len(logits) != len(dataset):
        return logits, y_true
    rows_of = np.asarray(dataset["example"])
    pooled = pool_rows(np.asarray(logits), rows_of, how)
    if y_true is None:
        return pooled, None
    first = np.r_[True, rows_of[1:] != rows_of[:-1]]
    return pooled, np.asarray(y_true)[first]


def _truncated(enc, tokenizer, texts: list[str], pairs: list[str] | None, max_length: int) -> list[bool]:
    """Which texts lost tokens: fast tokenizers record what truncation cut; slow ones need a
    second, untruncated pass."""
    if enc.encodings is not None:
        return [bool(e.overflowing) for e in enc.encodings]
    return [len(ids) > max_length for ids in tokenizer(texts, pairs)["input_ids"]]
