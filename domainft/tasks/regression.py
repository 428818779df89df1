"""Regression: one or more continuous targets per text (a sentiment score in [-1, 1], a rating).

The texts read, encode and truncate as for classification (its readers, encode_inputs, windows);
the targets are numbers from `data.label_column` or, several predicted together, from
`data.target_columns`. The head is a sequence-classification head with one output per target
(`problem_type: regression` in its config). Training standardizes the targets on the training
split's mean and standard deviation (train.standardize_targets, stored in the manifest), so the
learning rate and the loss do not depend on the targets' units; predictions and metrics are in
the data's own units.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

import numpy as np

from domainft.batching import predict_sorted
from domainft.data import DataBundle, Example
from domainft.data.layout import read_and_split
from domainft.data.prepare import check_inputs, example_key
from domainft.data.readers import TextFields, detect_format, read_examples
from domainft.data.splits import group_split, normalized_text, shared_groups, stratified_split
from domainft.decode import destandardize, target_values
from domainft.errors import DataError
from domainft.schema import field_error
from domainft.tasks.base import Task, register_task
from domainft.tasks.classification import ClassificationTask, encode_inputs, input_settings, pool_windows

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

# Recipe fields regression reads (tasks/base.py, Task.fields); several are shared with classification.
FIELDS = frozenset({"data.text_column", "data.text_template", "data.label_column", "data.target_columns",
                    "data.columns", "data.duplicates", "data.leak_columns", "data.missing_values",
                    "data.delimiter", "data.split.group_column", "lexicon", "export.enabled",
                    "data.standardize_targets", "train.loss", "train.huber_delta", "data.text_pair_column",
                    "data.text_pair_template", "data.long_inputs", "data.stride", "data.hub"})
# Classification settings a regression recipe may carry by mistake, and why they do not apply.
REFUSED = {
    "data.labels": "targets are numbers, not a label set; name the target columns in data.label_column "
                   "or data.target_columns",
    "data.label_names": "targets are numbers, not label values to name",
    "data.reference_column": "a reference rater's labels are scored for classification only",
    "data.ordinal": "ordered labels are classification; a regression target is ordered already",
    "decision": "a decision rule chooses among class probabilities; regression predicts values",
    "train.class_weights": "class weights weigh classes; regression has none",
    "train.label_smoothing": "label smoothing is a cross-entropy setting; regression uses train.loss",
}
LOWER_IS_BETTER = ("mse", "mae", "loss")
READS = ("csv", "tsv", "jsonl", "parquet", "hf_dataset")
MAX_BINS = 10  # data.split.stratify: quantile bins of the first target


@dataclass(frozen=True)
class Scaling:
    """The training targets' mean and standard deviation (population, ddof 0), and whether the
    model learns (y - mean) / std (train.standardize_targets) or y itself."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    standardized: bool = True

    @property
    def shift(self) -> tuple[float, ...]:
        return self.mean if self.standardized else (0.0,) * len(self.names)

    @property
    def scale(self) -> tuple[float, ...]:
        return self.std if self.standardized else (1.0,) * len(self.names)

    def forward(self, values: tuple[float, ...]) -> list[float]:
        return [(v - m) / s for v, m, s in zip(values, self.shift, self.scale)]

    def to_manifest(self) -> dict:
        return {"names": list(self.names), "mean": list(self.mean), "std": list(self.std),
                "standardized": self.standardized}


@dataclass(frozen=True)
class Scored(Example):
    """An example with its targets (Example.values) and the run's scaling, shared by all splits."""

    scaling: Scaling | None = None


def scored(ex: Example, scaling: Scaling) -> Scored:
    return Scored(**{f.name: getattr(ex, f.name) for f in fields(Example)}, scaling=scaling)


@dataclass
class RegressionData(DataBundle):
    scaling: Scaling | None = field(default=None)


def _is_set(recipe, dotted: str) -> bool:
    """Whether the recipe field at `dotted` ("train.class_weights", "decision") differs from its default."""
    *parents, last = dotted.split(".")
    section = recipe
    for name in parents:
        section = getattr(section, name)
    return getattr(section, last) != type(section).model_fields[last].get_default(call_default_factory=True)


def target_names(spec: DataSpec) -> list[str]:
    return list(spec.target_columns) or [spec.label_column]


@register_task("regression")
class RegressionTask(ClassificationTask):
    metric_names = ("mse", "mae", "pearson", "spearman", "r2", "loss")
    default_metric = "mse"
    summary_columns = [("MSE", "mse"), ("MAE", "mae"), ("Pearson", "pearson"), ("Spearman", "spearman")]
    gate_metrics = ("pearson", "spearman")  # higher is better, as export's drop_points reads them
    data_formats = READS
    fields = FIELDS

    def check_recipe(self, recipe) -> None:
        for path, why in REFUSED.items():
            if _is_set(recipe, path):
                raise field_error(path, f"does not apply to task: regression ({why}); remove it")
        if recipe.train.loss != "huber" and _is_set(recipe, "train.huber_delta"):
            raise field_error("train.huber_delta", "applies to train.loss: huber only; set train.loss: huber "
                              "or remove it")

    def greater_is_better(self, metric: str) -> bool:
        return metric not in LOWER_IS_BETTER

    def model_kwargs(self, labels: list[str]) -> dict:
        return {**super().model_kwargs(labels), "problem_type": "regression"}

    # --- data --------------------------------------------------------------------------------

    def load_data(self, spec: DataSpec) -> RegressionData:
        names = target_names(spec)
        fields = replace(TextFields.of(spec), target_columns=tuple(names))
        same = normalized_text if spec.duplicates == "normalized" else str
        report: dict = {"duplicates": spec.duplicates, "targets_missing": 0}
        s = spec.split
        kind = f"group split by {s.group_column!r}" if s.group_column else "split"
        how = f" (stratified on quantile bins of {names[0]!r})" if s.stratify else ""
        train, validation, test, layout = read_and_split(
            spec, read=lambda p: self._read(p, spec, fields, report),
            split=lambda exs, val, test: split_scored(exs, spec, val, test),
            key=lambda e: example_key(e, same), dedup=lambda exs: merge_duplicates(exs, same),
            split_kind=f"{kind}{how}")
        report.update(layout)
        scaling = fit_scaling(names, train, spec)
        train, validation, test = ([scored(e, scaling) for e in exs] for exs in (train, validation, test))
        report["targets"] = {name: _summary([e.values[j] for e in train]) for j, name in enumerate(names)}
        if s.group_column:
            report["groups"] = {"column": s.group_column,
                                **{n: len({e.group for e in exs}) for n, exs in
                                   zip(("train", "validation", "test"), (train, validation, test))},
                                "shared_between_splits": len(shared_groups(train, validation, test))}
        return RegressionData(train, validation, test, names, report, scaling)

    def _read(self, path, spec: DataSpec, fields: TextFields, report: dict) -> list[Example]:
        fmt = detect_format(path, spec.format)
        if fmt not in READS:
            raise DataError(f"{path}: task: regression reads {', '.join(READS)} (a header row or JSON keys naming "
                            f"the text and target columns), not {fmt}; set data.format or convert the file")
        examples = read_examples(path, fmt, fields, spec.encoding, spec.delimiter)
        check_inputs(examples, path, spec)
        kept = [ex for ex in examples if not any(math.isnan(v) for v in ex.values)]
        report["targets_missing"] += len(examples) - len(kept)
        if not kept:
            raise DataError(f"{path}: every row's target is one of data.missing_values "
                            f"({', '.join(map(repr, sorted(fields.missing_values)))}); there is nothing to learn from")
        return kept

    # --- encoding ----------------------------------------------------------------------------

    def encode(self, examples: list[Scored], tokenizer, label2id: dict[str, int], spec: DataSpec):
        """Model inputs as classification encodes them; float `labels` per row (standardized), and
        the scaling back to the data's units (target_shift / target_scale: not model inputs, the
        Trainer drops them from batches; the metrics read them)."""
        from datasets import Dataset

        columns, rows_of = encode_inputs(examples, tokenizer, spec)
        scaling = examples[0].scaling
        columns["labels"] = [scaling.forward(examples[i].values) for i in rows_of]
        columns["target_shift"] = [list(scaling.shift)] * len(rows_of)
        columns["target_scale"] = [list(scaling.scale)] * len(rows_of)
        return Dataset.from_dict(columns)

    # --- the loss ----------------------------------------------------------------------------

    def label_counts(self, train):
        raise NotImplementedError("task regression has no label counts; class weights do not apply")

    def loss_for(self, recipe, weights):
        """train.loss over all targets (mean): mse, or huber with train.huber_delta."""
        import torch

        kind, delta = recipe.train.loss, recipe.train.huber_delta

        def regression_loss(outputs, labels, num_items_in_batch=None):
            logits = outputs["logits"]
            y = labels.to(logits.dtype).reshape(logits.shape)
            if kind == "huber":
                return torch.nn.functional.huber_loss(logits, y, delta=delta)
            return torch.nn.functional.mse_loss(logits, y)

        return regression_loss

    # --- evaluation --------------------------------------------------------------------------

    def metrics_for(self, dataset, labels: list[str]):
        return lambda eval_pred: scalar_metrics(*values_of(eval_pred.predictions, eval_pred.label_ids, dataset))

    def fit_decision(self, recipe, predictions, label_ids, dataset=None, labels=None) -> tuple:
        return Task.fit_decision(self, recipe, predictions, label_ids)

    def evaluate(self, predictions, label_ids, labels, dataset, examples, recipe, split: str) -> dict:
        return self.report(predictions, label_ids, labels, dataset)

    def report(self, predictions, label_ids, labels: list[str], dataset=None) -> dict:
        """mse, mae, Pearson, Spearman and R² in the data's units, averaged over the targets, and
        per target."""
        y_pred, y_true = values_of(predictions, label_ids, dataset)
        per_target = {name: scalar_metrics(y_pred[:, [j]], y_true[:, [j]]) for j, name in enumerate(labels)}
        return {**scalar_metrics(y_pred, y_true), "n": int(len(y_true)), "per_target": per_target}

    # --- the saved model ---------------------------------------------------------------------

    def manifest_extras(self, recipe) -> dict:
        return {"text_inputs": input_settings(recipe.data, self.window_pooling)}

    def data_manifest(self, data: RegressionData) -> dict:
        return {"targets": data.scaling.to_manifest()}

    def predict(self, trained, texts, batch_size: int = 32) -> list[dict]:
        """[{'value': v}] per text (one target) or [{'values': {name: v}}] (several), in the data's
        units. Long texts are read as in training."""
        texts = trained.inputs(texts)
        targets = trained.manifest["targets"]
        return predict_sorted(texts, batch_size, lambda batch: target_values(trained.logits(batch), targets))


# --- data helpers ------------------------------------------------------------------------------

def merge_duplicates(examples: list[Example], key=str) -> tuple[list[Example], dict]:
    """One example per text (`key`: exact, or normalized_text): copies with the same targets are
    duplicates (the first kept); copies with different targets become one example with their
    mean (repeated ratings of one text), counted."""
    groups: dict = defaultdict(list)
    for ex in examples:
        groups[example_key(ex, key)].append(ex)
    kept, duplicates, averaged, rows = [], 0, 0, 0
    for members in groups.values():
        first = members[0]
        if len({m.values for m in members}) == 1:
            duplicates += len(members) - 1
            kept.append(first)
        else:
            averaged += 1
            rows += len(members)
            kept.append(replace(first, values=tuple(float(np.mean(col)) for col in zip(*(m.values for m in members)))))
    return kept, {"duplicates_removed": duplicates, "conflicting_texts_averaged": averaged,
                  "conflicting_rows_averaged": rows}


def split_scored(examples: list[Example], spec: DataSpec, validation: float, test: float):
    """The seeded split; data.split.stratify keeps the distribution of the first target in each
    split by stratifying on its quantile bins (as many as the smallest held-out part and three
    examples per bin allow, at most 10; none: a plain random split)."""
    s = spec.split
    fractions = [f for f in (validation, test) if f > 0]
    n = len(examples)
    k = min(MAX_BINS, int(min(fractions) * n) if fractions else 0, n // 3)
    stratify = s.stratify and k >= 2
    if stratify:
        order = sorted(range(n), key=lambda i: examples[i].values[0])
        bins = [0] * n
        for rank, i in enumerate(order):
            bins[i] = rank * k // n
        binned = [replace(e, label=f"q{b}") for e, b in zip(examples, bins)]
    else:
        binned = list(examples)
    splitter = group_split if s.group_column else stratified_split
    parts = splitter(binned, validation, test, s.seed, stratify)
    return tuple([replace(e, label="") for e in part] for part in parts)


def fit_scaling(names: list[str], train: list[Example], spec) -> Scaling:
    """The training targets' mean and standard deviation; a target without spread is an error."""
    if len(train) < 2:
        raise DataError(f"only {len(train)} training example(s); regression needs at least two (more data, or "
                        "smaller data.split fractions)")
    values = np.array([e.values for e in train], dtype=np.float64)
    mean, std = values.mean(0), values.std(0)
    for j, name in enumerate(names):
        if not std[j] > 0:
            raise DataError(f"target {name!r} has the same value ({mean[j]:g}) in every training example; there "
                            "is nothing to learn: check data.label_column / data.target_columns")
    return Scaling(tuple(names), tuple(map(float, mean)), tuple(map(float, std)), spec.standardize_targets)


def _summary(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max())}


# --- metrics ---------------------------------------------------------------------------------------

def values_of(predictions, label_ids, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, gold) [examples, targets] in the data's units: window rows pooled per example
    first (mean), then the standardization undone with the dataset's scaling columns."""
    predictions, label_ids = pool_windows(np.asarray(predictions), np.asarray(label_ids), dataset, how="mean")
    k = np.asarray(predictions).reshape(len(predictions), -1).shape[1]
    if dataset is not None and "target_shift" in dataset.column_names and len(dataset):
        targets = {"names": [None] * k, "mean": dataset[0]["target_shift"], "std": dataset[0]["target_scale"]}
    else:
        targets = {"names": [None] * k, "standardized": False}
    return destandardize(predictions, targets), destandardize(label_ids, targets)


def scalar_metrics(y_pred: np.ndarray, y_true: np.ndarray) -> dict[str, float]:
    """mse, mae, R² (scikit-learn's definitions), Pearson and Spearman correlation, each the mean
    over the target columns. A correlation with a constant side is 0 (undefined: no ranking)."""
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_true), -1)
    y_true = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    from scipy.stats import rankdata

    err = y_pred - y_true
    cols = range(y_true.shape[1])
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)
    r2 = [1.0 - float((err[:, j] ** 2).sum() / ss_tot[j]) if ss_tot[j] > 0 else 0.0 for j in cols]
    return {"mse": float((err ** 2).mean()), "mae": float(np.abs(err).mean()),
            "pearson": float(np.mean([_corr(y_pred[:, j], y_true[:, j]) for j in cols])),
            "spearman": float(np.mean([_corr(rankdata(y_pred[:, j]), rankdata(y_true[:, j])) for j in cols])),
            "r2": float(np.mean(r2))}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0
