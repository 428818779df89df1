"""Single-label text classification: sequence-classification head, accuracy / F1 metrics."""
from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from domainft.data import DataBundle, Example, prepare_examples
from domainft.decode import label_scores
from domainft.tasks import register_task
from domainft.tasks.base import Task

# Words as a lexicon sees them: letters and digits, hyphenated compounds kept whole.
WORDS = re.compile(r"\w+(?:-\w+)*")

if TYPE_CHECKING:
    from domainft.recipe import DataSpec


@register_task("classification")
class ClassificationTask(Task):
    metric_names = ("accuracy", "macro_f1", "weighted_f1", "loss")
    default_metric = "macro_f1"
    peft_task_type = "SEQ_CLS"
    long_input_note = "truncated to data.max_length tokens"
    summary_columns = [("accuracy", "accuracy"), ("macro-F1", "macro_f1")]
    gate_metrics = ("accuracy", "macro_f1")

    @property
    def model_class(self):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def load_data(self, spec: "DataSpec") -> DataBundle:
        return prepare_examples(spec)

    def words(self, examples: list[Example]) -> list[str]:
        return [w for e in examples for w in WORDS.findall(e.text)]

    def encode(self, examples: list[Example], tokenizer, label2id: dict[str, int], spec: "DataSpec"):
        """Tokenize without padding (the collator pads each batch to its own longest text)."""
        from datasets import Dataset

        enc = tokenizer([e.text for e in examples], truncation=True, max_length=spec.max_length)
        columns = dict(enc)
        columns["labels"] = [label2id[e.label] for e in examples]
        return Dataset.from_dict(columns)

    def count_truncated(self, examples: list[Example], tokenizer, spec: "DataSpec", encoded) -> int:
        lengths = [len(ids) for ids in tokenizer([e.text for e in examples])["input_ids"]]
        return sum(n > spec.max_length for n in lengths)

    def collator(self, tokenizer):
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def class_weights(self, train: list[Example], labels: list[str], setting) -> list[float] | None:
        if setting == "none":
            return None
        if setting == "balanced":  # n_samples / (n_classes * n_c), as scikit-learn defines it
            counts = Counter(e.label for e in train)
            return [len(train) / (len(labels) * counts[label]) for label in labels]
        return [float(setting.get(label, 1.0)) for label in labels]

    def loss_function(self, weights: list[float] | None):
        if weights is None:
            return None  # the model's own cross-entropy
        import torch

        weight = torch.tensor(weights, dtype=torch.float32)

        def weighted_cross_entropy(outputs, labels, num_items_in_batch=None):
            logits = outputs["logits"]
            return torch.nn.functional.cross_entropy(logits, labels, weight=weight.to(logits.device))

        return weighted_cross_entropy

    def metrics_for(self, dataset, labels: list[str]):
        """The scalar metrics the Trainer logs and early stopping reads (loss comes from Trainer)."""
        return lambda eval_pred: _scalar_metrics(eval_pred.label_ids, np.asarray(eval_pred.predictions).argmax(-1))

    def report(self, logits: np.ndarray, y_true: np.ndarray, labels: list[str], dataset=None) -> dict:
        """Full evaluation: scalar metrics, per-class precision/recall/F1, confusion matrix."""
        from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

        y_pred = np.asarray(logits).argmax(-1)
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
        }

    def predict(self, trained, texts, batch_size: int = 32) -> list[dict]:
        """[{'label', 'score', 'scores'}] per text. Texts longer than max_length are truncated."""
        if isinstance(texts, str):
            texts = [texts]
        id2label = dict(enumerate(trained.labels))
        results: list[dict] = []
        for start in range(0, len(texts), batch_size):
            results.extend(self.decode(trained.logits(texts[start:start + batch_size]), id2label))
        return results

    def decode(self, logits: np.ndarray, id2label: dict[int, str]) -> list[dict]:
        """Logits -> [{'label', 'score', 'scores'}] with softmax probabilities."""
        return label_scores(logits, id2label)


def _scalar_metrics(y_true, y_pred) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
    }
