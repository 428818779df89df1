"""Predict with an exported bundle (`domainft export`) without torch or transformers: only
onnxruntime, tokenizers and numpy. Batching, long NER inputs in overlapping windows, the same
outputs as a trained model's `predict`. A Predictor may be shared between threads, and a text's
result does not depend on the texts batched with it (dynamic int8, whose scales are computed per
batch, runs one text at a time).

    from domainft.serving import load
    clf = load("runs/finance_sentiment/onnx")
    clf.predict(["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn ."])
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

import numpy as np

from domainft.batching import predict_sorted
from domainft.decode import entities, label_scores, label_thresholds, multilabel_scores, pool_rows, target_values
from domainft.errors import DomainftError
from domainft.ordinal import Decision
from domainft.records import Records
from domainft.textinputs import as_inputs, window_error
from domainft.wordwindows import merge_windows, window_inputs, words_with_offsets

BUNDLE_FORMAT = "domainft-onnx"
BUNDLE_VERSION = 2  # 2: the graphs under onnx/; 1: model.onnx and model.int8.onnx beside the manifest
MANIFEST = "domainft.json"
# The Hugging Face layout, which transformers.js finds with its default options (subfolder "onnx",
# model_quantized.onnx for dtype q8) and Optimum's from_pretrained too (it picks model.onnx).
ONNX_DIR = "onnx"
FP32_FILE = f"{ONNX_DIR}/model.onnx"
INT8_FILE = f"{ONNX_DIR}/model_quantized.onnx"
LEGACY_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}  # format_version 1 bundles, still read
TOKENIZER_FILE = "tokenizer.json"
BUNDLE_DIR = "onnx"  # a run's own bundle: RUN_DIR/onnx (`domainft export RUN_DIR`)


def graph_files(path: str | Path) -> dict[str, str]:
    """{'fp32': ..., 'int8': ...}: the graphs' paths inside the bundle, by its layout (the int8
    one need not exist)."""
    path = Path(path)
    if not (path / FP32_FILE).is_file() and (path / LEGACY_FILES["fp32"]).is_file():
        return dict(LEGACY_FILES)
    return {"fp32": FP32_FILE, "int8": INT8_FILE}


def is_bundle(path: str | Path) -> bool:
    path = Path(path)
    return (path / graph_files(path)["fp32"]).is_file() and (path / MANIFEST).is_file()


def bundle_of(path: str | Path) -> Path:
    """The bundle `path` names: a bundle directory, or a run directory (or its model/) that has been
    exported. Read without torch: serving hosts have none."""
    path = Path(path)
    for candidate in (path, path / BUNDLE_DIR, path.parent / BUNDLE_DIR):
        if is_bundle(candidate):
            return candidate
    if not path.exists():
        raise DomainftError(f"{path} does not exist; give an exported bundle directory or a run directory")
    raise DomainftError(f"{path}: no exported bundle there (no {FP32_FILE} and {MANIFEST}, nor in "
                        f"{path / BUNDLE_DIR}); export the run first with `domainft export RUN_DIR`")


def session(model_path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session; `threads` (default: $OMP_NUM_THREADS, else ORT's choice) caps
    the intra-op pool, which ORT sizes to all cores otherwise."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # warnings about unused initializers are noise to users
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def pad(rows: list[list[int]], value: int) -> np.ndarray:
    width = max(len(r) for r in rows)
    return np.array([r + [value] * (width - len(r)) for r in rows], dtype=np.int64)


def stack_rows(outputs: list[np.ndarray]) -> np.ndarray:
    """One batch from per-row logits; token logits padded to the longest row with -100."""
    if outputs[0].ndim == 2:
        return np.concatenate(outputs)
    width = max(o.shape[1] for o in outputs)
    return np.concatenate([np.pad(o, ((0, 0), (0, width - o.shape[1]), (0, 0)), constant_values=-100.0)
                           for o in outputs])


def int8_mode(manifest: dict) -> str:
    """'static' or 'dynamic': how the bundle's int8 model was quantized (bundles from before static
    int8 are dynamic)."""
    return ((manifest.get("parity", {}).get("int8") or {}).get("quantization") or {}).get("mode", "dynamic")


class Predictor:
    """A bundle ready to predict. precision: 'auto' (int8 when the bundle has it), 'fp32', 'int8'."""

    def __init__(self, bundle: str | Path, precision: Literal["auto", "fp32", "int8"] = "auto",
                 threads: int | None = None):
        from tokenizers import Tokenizer

        self.dir = Path(bundle)
        if not is_bundle(self.dir):
            raise DomainftError(f"{self.dir}: not an exported bundle (no {FP32_FILE} and {MANIFEST}); "
                                "create one with `domainft export RUN_DIR`")
        self.manifest = json.loads((self.dir / MANIFEST).read_text(encoding="utf-8"))
        files = graph_files(self.dir)
        has_int8 = (self.dir / files["int8"]).is_file()
        if precision == "int8" and not has_int8:
            reason = self.manifest.get("parity", {}).get("int8", {}).get("reason") or "it was not exported"
            raise DomainftError(f"{self.dir}: no {files['int8']} ({reason}); use precision fp32")
        self.precision = "int8" if precision == "int8" or (precision == "auto" and has_int8) else "fp32"
        self.session = session(self.dir / files[self.precision], threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        # Dynamic int8 (bundles before static int8, or export.int8_mode: dynamic) scales each MatMul's
        # input by the whole batch's range: only a batch of one keeps a text's result its own.
        self.one_row_at_a_time = self.precision == "int8" and int8_mode(self.manifest) != "static"
        # Two tokenizers, configured once here and never changed: a Predictor is shared between threads,
        # and changing a tokenizers.Tokenizer's settings while another thread encodes with it raises
        # "Already borrowed". `tokenizer` (no truncation) splits NER words; classification truncates.
        # tokenizer.json itself truncates at max_length, for other clients.
        self.tokenizer = Tokenizer.from_file(str(self.dir / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        # Classification cuts as training did (textinputs.tokenize): longest-first, or into windows
        # sharing `stride` tokens (over the second text of a pair).
        self.inputs = {"text_pair": False, "long_inputs": "truncate", "window_pooling": "mean",
                       **self.manifest.get("text_inputs", {})}
        self.windows = self.inputs["long_inputs"] == "windows"
        self.records = Records.of(self.inputs)  # rows -> texts, for a model trained through a template
        self._truncating = Tokenizer.from_file(str(self.dir / TOKENIZER_FILE))
        self._truncating.no_padding()
        if self.windows:
            self._truncating.enable_truncation(self.manifest["max_length"], stride=self.manifest["stride"],
                                               strategy="only_second" if self.inputs["text_pair"] else "longest_first")
        else:
            self._truncating.enable_truncation(self.manifest["max_length"])
        self.special = self.manifest["special_tokens"]

    @property
    def task(self) -> str:
        return self.manifest["task"]

    def as_inputs(self, texts) -> list:
        """Texts, text pairs or (a model trained on texts built from columns) rows, as the tokenizer
        takes them: read as training read its inputs."""
        return as_inputs(list(texts), self.inputs["text_pair"], self.records)

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    def predict(self, texts, batch_size: int = 32) -> list[dict]:
        """One dict per text, as domainft's trained model returns. Classification: {'label',
        'score', 'scores'}; multilabel: {'labels', 'scores'}; regression: {'value'} (one target) or
        {'values': {name: value}}; ner: {'entities': [{'type', 'start',
        'end', 'text', 'score'}], 'words', 'tags'} (a text is a string or a list of words; a text pair
        (text, text_pair) or {"text", "text_pair"} for a model trained on pairs)."""
        if isinstance(texts, (str, dict)):
            texts = [texts]
        if self.task == "ner":
            return self._predict_words(list(texts), batch_size)
        if self.task == "multilabel":  # the labels above the run's thresholds, with every label's probability
            labels, thresholds = self.labels, label_thresholds(self.manifest, self.labels)
            return predict_sorted(self.as_inputs(texts), batch_size,
                                  lambda batch: multilabel_scores(self.logits(batch), labels, thresholds))
        if self.task == "regression":  # values in the data's units, as the trained model's predict
            targets = self.manifest["targets"]
            return predict_sorted(self.as_inputs(texts), batch_size,
                                  lambda batch: target_values(self.logits(batch), targets))
        id2label = dict(enumerate(self.labels))
        decision = Decision.from_manifest(self.manifest)  # the run's rule, e.g. ordinal escalation
        return predict_sorted(self.as_inputs(texts), batch_size,
                              lambda batch: label_scores(self.logits(batch), id2label, decision.choose))

    def logits(self, texts: list) -> np.ndarray:
        """Logits for one batch of texts or text pairs, one row per input, read as in training:
        truncated to the trained max length, or in windows whose logits are pooled."""
        items = self.as_inputs(texts)
        try:
            encodings = self._truncating.encode_batch(items)
        except Exception as e:  # tokenizers: a pair's first text leaves no room for windows
            if not self.windows:
                raise
            raise DomainftError(window_error(e, self.manifest["max_length"], self.manifest["stride"])) from None
        if not self.windows:
            return self.run([e.ids for e in encodings], [e.type_ids for e in encodings])
        rows, rows_of = [], []
        for k, encoding in enumerate(encodings):
            for window in [encoding, *encoding.overflowing]:
                rows.append(window)
                rows_of.append(k)
        logits = self.run([w.ids for w in rows], [w.type_ids for w in rows])
        return pool_rows(logits, rows_of, self.inputs["window_pooling"])

    def run(self, rows: list[list[int]], type_ids: list[list[int]] | None = None) -> np.ndarray:
        """Logits for token-id rows, padded to the longest (token logits beyond a row's length are
        padding, never read)."""
        if self.one_row_at_a_time and len(rows) > 1:
            types = type_ids or [None] * len(rows)
            return stack_rows([self._run([r], [t] if t is not None else None) for r, t in zip(rows, types)])
        return self._run(rows, type_ids)

    def _run(self, rows: list[list[int]], type_ids: list[list[int]] | None = None) -> np.ndarray:
        feed = {"input_ids": pad(rows, self.special["pad"]),
                "attention_mask": pad([[1] * len(r) for r in rows], 0),
                "token_type_ids": pad(type_ids or [[0] * len(r) for r in rows], 0)}
        return self.session.run(["logits"], {k: feed[k] for k in self.input_names})[0]

    def _predict_words(self, texts: list, batch_size: int) -> list[dict]:
        docs = [words_with_offsets(t) for t in texts]
        rows, sentence_of, word_index = [], [], []
        for k, (words, _, _) in enumerate(docs):
            for ids, wi in self._windows(words):
                rows.append(ids)
                sentence_of.append(k)
                word_index.append(wi)
        width = max((len(r) for r in rows), default=0)
        logits = np.full((len(rows), width, len(self.labels)), -100.0, dtype=np.float32)
        for start in range(0, len(rows), batch_size):
            chunk = self.run(rows[start:start + batch_size])
            logits[start:start + len(chunk), :chunk.shape[1]] = chunk
        merged = merge_windows(logits, sentence_of, word_index, n_sentences=len(docs))
        return [entities(words, starts, source, p, self.labels) for (words, starts, source), p in zip(docs, merged)]

    def _windows(self, words: list[str]) -> list[tuple[list[int], list[int]]]:
        if not words:
            return []
        prefix, suffix = self.special["prefix"], self.special["suffix"]
        pieces = [e.ids or [self.special["unk"]]
                  for e in self.tokenizer.encode_batch(words, add_special_tokens=False)]
        budget = self.manifest["max_length"] - len(prefix) - len(suffix)
        return window_inputs(pieces, budget, self.manifest["stride"], lambda body: prefix + body + suffix,
                             len(prefix))


def load(bundle: str | Path, precision: Literal["auto", "fp32", "int8"] = "auto",
         threads: int | None = None) -> Predictor:
    """Load an exported bundle directory for prediction."""
    return Predictor(bundle, precision, threads)
