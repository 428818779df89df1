"""Named-entity recognition: token-classification head, IOB2 tags, entity-level seqeval scores.

Only the first subword of each word carries its tag in the loss; predictions come back per word.
Sentences longer than the window are split into overlapping windows and merged (domainft/wordwindows.py).
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from domainft.data.ner import NER_FORMATS, NerBundle, Sentence, prepare_sentences
from domainft.decode import entities
from domainft.schema import field_error
from domainft.tasks.base import IGNORE, Task, register_task
from domainft.wordwindows import merge_windows, special_prefix_length, window_inputs, words_with_offsets

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

# Recipe fields that only NER reads (tasks/base.py, Task.fields).
FIELDS = frozenset({"data.labels", "data.label_names", "data.sentence_columns", "data.delimiter",
                    "data.conll_tag_index", "data.tokens_column", "data.tags_column", "data.text_column",
                    "data.spans_column", "data.scheme", "data.repair_tags", "data.stride", "lexicon",
                    "train.class_weights", "train.label_smoothing", "export.enabled"})


@register_task("ner")
class NerTask(Task):
    metric_names = ("f1", "precision", "recall", "accuracy", "loss")
    default_metric = "f1"
    peft_task_type = "TOKEN_CLS"
    long_input_note = "split into overlapping windows (data.max_length, data.stride)"
    words_as_input = True
    summary_columns = [("precision", "precision"), ("recall", "recall"), ("entity F1", "f1")]
    gate_metrics = ("f1",)
    data_formats = NER_FORMATS
    fields = FIELDS

    def check_recipe(self, recipe) -> None:
        super().check_recipe(recipe)
        d = recipe.data
        if (d.format == "token_table") != bool(d.sentence_columns):
            raise field_error("data.sentence_columns", "format token_table needs the columns that tell a sentence's "
                              "rows apart (e.g. [doc_idx, sent_idx]), and only it reads them; set both or neither")
        if d.stride > d.max_length // 2:
            raise field_error("data", f"`stride` ({d.stride}) must be at most half of `max_length` "
                                      f"({d.max_length}) so that windows advance")

    @property
    def model_class(self):
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification

    def load_data(self, spec: DataSpec) -> NerBundle:
        return prepare_sentences(spec)

    def words(self, sentences: list[Sentence]) -> list[str]:
        return [w for s in sentences for w in s.words]

    # --- encoding ------------------------------------------------------------------------

    def encode(self, sentences: list[Sentence], tokenizer, label2id: dict[str, int], spec: DataSpec):
        from datasets import Dataset

        columns: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": [],
                                    "sentence": [], "word_index": []}
        for k, s in enumerate(sentences):
            tags = [label2id[t] for t in s.tags]
            for ids, word_index in encode_words(s.words, tokenizer, spec.max_length, spec.stride):
                columns["input_ids"].append(ids)
                columns["attention_mask"].append([1] * len(ids))
                columns["labels"].append([tags[i] if i >= 0 else IGNORE for i in word_index])
                columns["sentence"].append(k)
                columns["word_index"].append(word_index)
        return Dataset.from_dict(columns)

    def count_truncated(self, sentences: list[Sentence], tokenizer, spec: DataSpec, encoded) -> int:
        """Sentences that needed more than one window (nothing is truncated)."""
        return sum(n > 1 for n in Counter(encoded["sentence"]).values())

    def collator(self, tokenizer):
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE)

    # --- loss ----------------------------------------------------------------------------

    def label_counts(self, train: list[Sentence]) -> Counter:
        return Counter(t for s in train for t in s.tags)

    # --- evaluation ----------------------------------------------------------------------

    def metrics_for(self, dataset, labels: list[str]):
        def compute(eval_pred) -> dict[str, float]:
            gold, pred = self._word_tags(eval_pred.predictions, dataset, labels)
            return _scores(gold, pred)

        return compute

    def report(self, predictions, label_ids, labels: list[str], dataset) -> dict:
        from seqeval.metrics import classification_report
        from seqeval.scheme import IOB2

        gold, pred = self._word_tags(predictions, dataset, labels)
        per_type = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
        types = sorted(k for k in per_type if not k.endswith(" avg"))
        return {
            **_scores(gold, pred),
            "n": len(gold),
            "entities": int(sum(per_type[t]["support"] for t in types)),
            "per_class": {t: {"precision": float(per_type[t]["precision"]), "recall": float(per_type[t]["recall"]),
                              "f1": float(per_type[t]["f1-score"]), "support": int(per_type[t]["support"])}
                          for t in types},
        }

    def _word_tags(self, predictions, dataset, labels: list[str]) -> tuple[list[list[str]], list[list[str]]]:
        """Gold and predicted IOB2 tags per original word, windows merged."""
        logits = np.asarray(predictions)
        word_probs = merge_windows(logits, dataset["sentence"], dataset["word_index"])
        gold_ids = merge_gold(dataset["labels"], dataset["sentence"], dataset["word_index"])
        pred = [[labels[int(i)] for i in p.argmax(-1)] for p in word_probs]
        gold = [[labels[i] for i in g] for g in gold_ids]
        return gold, pred

    # --- prediction ----------------------------------------------------------------------

    def predict(self, trained, texts, batch_size: int = 32) -> list[dict]:
        """Per text: {'entities': [{'type', 'start', 'end', 'text', 'score'}], 'words', 'tags'}.

        A text is a string (split into words like the training corpora, offsets into it) or a
        list of words (offsets into the words joined by single spaces).
        """
        if isinstance(texts, str):
            texts = [texts]
        docs = [words_with_offsets(t) for t in texts]
        logits = self.word_logits(trained, [words for words, _, _ in docs], batch_size)
        return [entities(words, starts, source, x, trained.labels) for (words, starts, source), x in zip(docs, logits)]

    def word_logits(self, trained, word_lists: list[list[str]], batch_size: int = 32) -> list[np.ndarray]:
        """Per sentence, [words, labels] logits: each word's first subword, from its best window (what
        predict decodes, and what a distilled student's soft targets are made from)."""
        import torch

        manifest, tokenizer, model = trained.manifest, trained.tokenizer, trained.model
        labels = trained.labels
        rows, sentence_of, word_index = [], [], []
        for k, words in enumerate(word_lists):
            for ids, wi in encode_words(words, tokenizer, manifest["max_length"], manifest.get("stride", 32)):
                rows.append(ids)
                sentence_of.append(k)
                word_index.append(wi)
        model.eval()
        width = max((len(r) for r in rows), default=0)
        logits = np.full((len(rows), width, len(labels)), -100.0, dtype=np.float32)
        pad = tokenizer.pad_token_id or 0
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            n = max(len(r) for r in chunk)
            ids = torch.tensor([r + [pad] * (n - len(r)) for r in chunk])
            mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in chunk])
            with torch.inference_mode():
                out = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
            logits[start:start + len(chunk), :n] = out.float().cpu().numpy()
        return merge_windows(logits, sentence_of, word_index, n_sentences=len(word_lists))


# --- helpers -------------------------------------------------------------------------------------

def encode_words(words: list[str], tokenizer, max_length: int, stride: int) -> list[tuple[list[int], list[int]]]:
    """[(input_ids, word_index)] per window; word_index[p] is the word whose first subword sits at
    position p, or -1 (special token, later subword)."""
    pieces = [p or [tokenizer.unk_token_id] for p in tokenizer(words, add_special_tokens=False)["input_ids"]]
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    return window_inputs(pieces, budget, stride, tokenizer.build_inputs_with_special_tokens,
                         special_prefix_length(tokenizer))


def merge_gold(label_rows, sentence_of, word_index) -> list[list[int]]:
    gold: dict[int, dict[int, int]] = {}
    for labels, k, index in zip(label_rows, sentence_of, word_index):
        for label, i in zip(labels, index):
            if i >= 0:
                gold.setdefault(k, {})[i] = label
    return [[g[i] for i in range(len(g))] for _, g in sorted(gold.items())]


def _scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    kw = {"mode": "strict", "scheme": IOB2, "zero_division": 0}
    return {"f1": float(f1_score(gold, pred, **kw)), "precision": float(precision_score(gold, pred, **kw)),
            "recall": float(recall_score(gold, pred, **kw)), "accuracy": float(accuracy_score(gold, pred))}
