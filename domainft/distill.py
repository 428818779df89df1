"""Task distillation: a finished, larger run (the teacher; teacher.py) labels the training texts, and any
unlabelled in-domain texts (the transfer set), with soft targets; the recipe's own base (the
student) learns from a mix of the gold-label loss and a temperature-scaled divergence to them
(Hinton et al. 2015; DistilBERT, TinyBERT and MiniLM distil so).

    distill: {teacher: runs/finance_teacher, alpha: 0.5, temperature: 2.0,
              transfer: [../shared/datasets/fiqa/headlines.txt]}

Targets, one per student row (a text's windows share its text's target):
  classification  the teacher's logits                      KL(softmax(t/T) || softmax(s/T)) T^2
  multilabel      the teacher's logits                      BCE(sigmoid(s/T), sigmoid(t/T)) T^2
  ner             per word, the teacher's log-probabilities  the KL per word, at the student's first
                  (its best window), at the student's       subword of each word
                  first subword of that word
The teacher reads every text with its own tokenizer and windows, so teacher and student need not
share a vocabulary; they must share the labels. Its outputs are computed once and cached (by the
teacher's weights, text by text), so a sweep over seeds asks it once and a run that adds transfer
or augmented texts asks it for those only. A transfer text that is, after
normalization, a training, validation or test text of the run is dropped (and counted).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from domainft.atomic import write_bytes
from domainft.decode import log_softmax
from domainft.errors import DomainftError
from domainft.gguf import cache_dir
from domainft.tasks.base import IGNORE
from domainft.textfiles import read_texts, unseen

TEACHER_COLUMN = "teacher"  # the soft targets' dataset column, kept by the Trainer (training.py)


# --- the teacher's targets, cached -------------------------------------------------------------

def teacher_fingerprint(model_dir: Path) -> str:
    """What identifies a teacher's outputs: its manifest and its weight files (name, size, content)."""
    from domainft.bases import folder_files

    h = hashlib.sha256((model_dir / "domainft.json").read_bytes())
    for entry in folder_files(model_dir, (".safetensors", ".bin", ".json")):
        h.update(entry.encode())
    return h.hexdigest()


def cached_targets(model_dir: Path, items: list, compute, kind: str) -> tuple[list[np.ndarray], int]:
    """compute(items) -> one array per item, cached item by item under
    $DOMAINFT_CACHE/teacher_targets/<teacher>-<kind>/ (the teacher by its weights, an item by its
    content), so a run that adds texts (transfer, augmented copies, another student's split) asks the
    teacher for the new ones only. (one array per item, how many items were computed now)."""
    teacher = teacher_fingerprint(model_dir)
    store = cache_dir() / "teacher_targets" / f"{teacher[:32]}-{kind}"
    keys = [hashlib.sha256(json.dumps(x, ensure_ascii=False).encode()).hexdigest()[:32] for x in items]
    known = _read_store(store)
    missing = list(dict.fromkeys(k for k in keys if k not in known))  # each new item once, in order
    computed = 0
    if missing:
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        earlier = _list_cached_before(teacher, items, kind)
        if earlier is not None:
            arrays = [earlier[first[k]] for k in missing]
        else:
            arrays = [np.asarray(a, dtype=np.float32) for a in compute([items[first[k]] for k in missing])]
            computed = len(missing)
        arrays = [a.reshape(-1, a.shape[-1]) for a in arrays]
        _write_chunk(store, missing, arrays)
        known.update(zip(missing, arrays))
    return [known[k] for k in keys], computed


def _list_cached_before(teacher: str, items: list, kind: str) -> list[np.ndarray] | None:
    """One array per item from the file an earlier domainft version cached for exactly this list of
    items (teacher_targets/<hash of teacher, kind, list>.npz: for texts one (n, labels) array), so
    outputs computed before the per-text store are not computed again; None if there is none."""
    key = hashlib.sha256(teacher.encode())
    key.update(kind.encode())
    key.update(json.dumps(items, ensure_ascii=False).encode())
    path = cache_dir() / "teacher_targets" / f"{key.hexdigest()[:32]}.npz"
    if not path.is_file():
        return None
    with np.load(path) as stored:
        flat, lengths = stored["flat"], stored["lengths"]
    arrays = list(flat[:, None, :]) if kind == "text" else np.split(flat, np.cumsum(lengths)[:-1])
    return arrays if len(arrays) == len(items) else None


def _read_store(store: Path) -> dict[str, np.ndarray]:
    known: dict[str, np.ndarray] = {}
    for chunk in sorted(store.glob("*.npz")) if store.is_dir() else []:
        with np.load(chunk) as stored:
            keys, flat, lengths = stored["keys"], stored["flat"], stored["lengths"]
        known.update(zip((k.decode() for k in keys), np.split(flat, np.cumsum(lengths)[:-1])))
    return known


def _write_chunk(store: Path, keys: list[str], arrays: list[np.ndarray]) -> None:
    """One file of new items, named by them: concurrent runs write different files or the same one
    with the same content; the write is atomic, so no run reads half a file."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, keys=np.array(keys, dtype="S32"), flat=np.concatenate(arrays),
             lengths=np.array([len(a) for a in arrays], dtype=np.int64))
    store.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256("".join(keys).encode()).hexdigest()[:32]
    write_bytes(store / f"{name}.npz", buffer.getvalue())


def load_teacher(teacher_dir: Path, task: str, student_labels: list[str]):
    """The teacher run's model, checked against the student: same task, same labels."""
    from domainft.model import load

    teacher = load(teacher_dir)
    if teacher.task.name != task:
        raise DomainftError(f"distill.teacher: {teacher_dir} is a {teacher.task.name} run; the student's "
                            f"task is {task}: train the teacher on the same task")
    if sorted(teacher.labels) != sorted(student_labels):
        raise DomainftError(f"distill.teacher: {teacher_dir} predicts {teacher.labels}, the student's "
                            f"data has {student_labels}; teacher and student must share the labels")
    return teacher


def teacher_model_dir(teacher_dir: Path) -> Path:
    from domainft.rundir import run_dir_of

    return run_dir_of(teacher_dir).model_dir


def label_order(teacher, student_labels: list[str]) -> list[int]:
    """Column i of a student target is the teacher's column for student label i."""
    return [teacher.labels.index(label) for label in student_labels]


# --- the student's training set with targets ------------------------------------------------------

def with_teacher(prepared, teacher_dir: Path, echo=print):
    """prepared.encoded['train'] with a TEACHER_COLUMN from the finished run in teacher_dir (and the
    transfer texts as extra rows whose labels count for nothing), and metrics.json's `distill` section."""
    started = time.perf_counter()
    recipe, task, data = prepared.recipe, prepared.task, prepared.data
    spec = recipe.distill
    teacher = load_teacher(teacher_dir, recipe.task, data.labels)
    order = label_order(teacher, data.labels)
    train = prepared.encoded["train"]
    known = [_text_of(x) for split in (data.train, data.validation, data.test) for x in split]
    files = read_texts(spec.transfer, spec.transfer_limit, "distill.transfer") if spec.transfer else []
    if (files or spec.augment) and task.name != "ner" and getattr(recipe.data, "has_pairs", False):
        field = "distill.transfer" if files else "distill.augment"
        raise DomainftError(f"{field}: this model reads text pairs; transfer and augmented texts are single "
                            f"texts. Remove {field}")
    files, dropped = unseen(files, known)
    # a copy that is (normalized) a run text, a transfer text or another copy teaches nothing new
    copies, dropped_copies = unseen(augmented_texts([_text_of(x) for x in data.train], spec.augment), known + files)
    transfer = files + copies
    echo(f"distill: teacher {teacher_dir} ({teacher.manifest['base']['requested']}); "
         f"{len(data.train)} training texts" + (f" + {len(files)} transfer texts" if spec.transfer else "")
         + (f" + {len(copies)} augmented copies" if spec.augment else ""))
    if task.name == "ner":
        train, computed = _ner_targets(teacher, teacher_dir, order, prepared, transfer)
    else:
        train, computed = _text_targets(teacher, teacher_dir, order, prepared, transfer)
    report = {"teacher": str(teacher_dir), "teacher_base": teacher.manifest["base"].get("requested"),
              "teacher_trained_here": spec.teacher is None,  # distill.teacher_base: trained (or cached) first
              "teacher_test": _teacher_scores(teacher_dir),
              "alpha": spec.alpha, "temperature": spec.temperature,
              "transfer": {"files": [str(p) for p in spec.transfer], "texts": len(files),
                           "dropped_known_or_repeated": dropped},
              "augment": {"copies": spec.augment, "texts": len(copies), "dropped_known_or_repeated": dropped_copies},
              "train_rows": len(train), "teacher_outputs_cached": computed == 0,
              "teacher_outputs_computed": computed,  # texts new to the cache, the others read from it
              "seconds": round(time.perf_counter() - started, 1)}
    return train, report


def _text_of(item) -> str:
    return " ".join(item.words) if hasattr(item, "words") else item.text


def augmented_texts(texts: list[str], copies: int, seed: int = 0) -> list[str]:
    """`copies` perturbed versions of each text, for the teacher to label (Tang et al. 2019, "Distilling
    task-specific knowledge from BERT into simple neural networks"; TinyBERT augments so too): each
    word dropped with p 0.1 (their masking, as text both tokenizers read), then with p 0.25 only a
    span of 1-5 words kept (their n-gram sampling). A fixed seed, so every student seed asks the
    teacher for the same texts (its outputs are cached)."""
    import random

    rng = random.Random(seed)
    out = []
    for text in texts:
        words = text.split()
        for _ in range(copies):
            kept = [w for w in words if rng.random() >= 0.1] or words[:1]
            if len(kept) > 1 and rng.random() < 0.25:
                n = rng.randint(1, min(5, len(kept)))
                start = rng.randrange(len(kept) - n + 1)
                kept = kept[start:start + n]
            out.append(" ".join(kept))
    return out


def _teacher_scores(teacher_dir) -> dict:
    path = Path(teacher_dir) / "metrics.json"
    if not path.is_file():
        return {}
    test = json.loads(path.read_text(encoding="utf-8")).get("test") or {}
    return {k: v for k, v in test.items() if isinstance(v, (int, float))}


def _text_targets(teacher, teacher_dir: Path, order, prepared, transfer: list[str]):
    from datasets import concatenate_datasets

    from domainft.data.readers import Example
    from domainft.tasks.classification import encode_inputs

    recipe, data = prepared.recipe, prepared.data
    pairs = getattr(recipe.data, "has_pairs", False)
    items = [{"text": e.text, "text_pair": e.pair} if pairs else e.text for e in data.train] + transfer

    def compute(batch_items):
        return [teacher.logits(batch_items[i:i + 32]) for i in range(0, len(batch_items), 32)]

    rows, computed = cached_targets(teacher_model_dir(teacher_dir), items,
                                    lambda xs: list(np.concatenate(compute(xs))) if xs else [], "text")
    logits = np.concatenate(rows)[:, order] if rows else np.zeros((0, len(order)), np.float32)
    train = prepared.encoded["train"]
    rows_of = train["example"] if "example" in train.column_names else list(range(len(train)))
    train = train.add_column(TEACHER_COLUMN, [logits[i].tolist() for i in rows_of])
    if not transfer:
        return train, computed
    examples = [Example(text=t, label="", source="distill.transfer", line=n + 1) for n, t in enumerate(transfer)]
    columns, rows = encode_inputs(examples, prepared.tokenizer, recipe.data)
    n_labels = len(data.labels)
    ignored = IGNORE if recipe.task == "classification" else [float(IGNORE)] * n_labels
    columns["labels"] = [ignored] * len(rows)
    if "example" in columns:
        columns["example"] = [len(data.train) + r for r in rows]
    columns[TEACHER_COLUMN] = [logits[len(data.train) + r].tolist() for r in rows]
    return concatenate_datasets([train, _dataset_like(train, columns)]), computed


def _ner_targets(teacher, teacher_dir: Path, order, prepared, transfer: list[str]):
    from datasets import concatenate_datasets

    from domainft.tasks.ner import encode_words
    from domainft.wordwindows import words_with_offsets

    recipe, data, tokenizer = prepared.recipe, prepared.data, prepared.tokenizer
    word_lists = [list(s.words) for s in data.train] + [words_with_offsets(t)[0] for t in transfer]
    logits, computed = cached_targets(teacher_model_dir(teacher_dir), word_lists,
                                      lambda lists: teacher.task.word_logits(teacher, lists), "ner")
    # log-probabilities (log-softmax of the logits): softmax(log p / T) is the teacher's distribution
    # at temperature T, and a row of them is never all 0, the "no target" mark below
    logp = [log_softmax(x[:, order]).astype(np.float32) for x in logits]
    n_labels = len(data.labels)
    none = [0.0] * n_labels  # "no target" (a later subword, a special token): log-probabilities are never all 0

    def targets(sentence: int, word_index: list[int]) -> list[list[float]]:
        return [logp[sentence][w].tolist() if w >= 0 else none for w in word_index]

    train = prepared.encoded["train"]
    train = train.add_column(TEACHER_COLUMN, [targets(s, wi) for s, wi in zip(train["sentence"], train["word_index"])])
    if not transfer:
        return train, computed
    columns: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": [], "sentence": [],
                                "word_index": [], TEACHER_COLUMN: []}
    for k, words in enumerate(word_lists[len(data.train):], start=len(data.train)):
        for ids, word_index in encode_words(words, tokenizer, recipe.data.max_length, recipe.data.stride):
            columns["input_ids"].append(ids)
            columns["attention_mask"].append([1] * len(ids))
            columns["labels"].append([IGNORE] * len(ids))
            columns["sentence"].append(k)
            columns["word_index"].append(word_index)
            columns[TEACHER_COLUMN].append(targets(k, word_index))
    return concatenate_datasets([train, _dataset_like(train, columns)]), computed


def _dataset_like(train, columns: dict):
    """A Dataset of `columns` with `train`'s columns and features (so that the two concatenate)."""
    from datasets import Dataset

    missing = [c for c in train.column_names if c not in columns]
    if missing:
        raise DomainftError(f"distill.transfer: cannot build rows for the training set's columns {missing}")
    return Dataset.from_dict({c: columns[c] for c in train.column_names}, features=train.features)


# --- collation and the loss ------------------------------------------------------------------------

def collator(inner):
    """The task's collator, with the teacher targets stacked (per token: padded with "no target")."""
    import torch

    def collate(features: list[dict]):
        targets = [f.pop(TEACHER_COLUMN) for f in features] if TEACHER_COLUMN in features[0] else None
        batch = inner(features)
        if targets is None:
            return batch
        if isinstance(targets[0][0], (list, tuple)):  # per token
            width = batch["input_ids"].shape[1]
            n = len(targets[0][0])
            targets = [list(t) + [[0.0] * n] * (width - len(t)) for t in targets]
        batch[TEACHER_COLUMN] = torch.tensor(targets, dtype=torch.float32)
        return batch

    return collate


def distillation_loss(task_name: str, alpha: float, temperature: float, gold_loss=None):
    """(model, inputs, num_items_in_batch) -> alpha * teacher term + (1 - alpha) * gold loss; rows
    without gold labels (transfer texts) count in the teacher term only."""
    import torch
    import torch.nn.functional as F

    t = temperature

    def teacher_term(logits, teacher):
        if task_name == "multilabel":
            return F.binary_cross_entropy_with_logits(logits / t, torch.sigmoid(teacher / t)) * t * t
        if task_name == "ner":
            has = teacher.abs().sum(-1) > 0
            logits, teacher = logits[has], teacher[has]
            if not len(logits):
                return logits.sum() * 0.0
        return F.kl_div(F.log_softmax(logits / t, -1), F.softmax(teacher / t, -1), reduction="batchmean") * t * t

    def gold_term(logits, labels):
        flat = labels.reshape(labels.shape[0], -1)
        rows = (flat != IGNORE).any(-1) if task_name != "multilabel" else (flat >= 0).all(-1)
        if not rows.any():
            return logits.sum() * 0.0
        logits, labels = logits[rows], labels[rows]
        if gold_loss is not None:
            return gold_loss({"logits": logits}, labels)
        if task_name == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)

    def loss(model, inputs, num_items_in_batch=None):
        teacher = inputs.pop(TEACHER_COLUMN)
        labels = inputs.pop("labels")
        logits = model(**inputs).logits.float()
        return alpha * teacher_term(logits, teacher.to(logits.device)) + (1 - alpha) * gold_term(logits, labels)

    return loss
