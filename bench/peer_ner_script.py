"""The NER peer: what does a plain Hugging Face token-classification script score on the same corpus?
In the style of transformers' examples/pytorch/token-classification/run_ner.py (its defaults: lr 5e-5,
3 epochs, batch 8, first-subword labels, truncation at 128 tokens, seqeval scores).

Reads a CoNLL corpus directory (train/devel/test.tsv, token<TAB>tag) and prints one JSON line with
test entity F1 both as run_ner computes it (seqeval default mode) and in strict IOB2 mode (what
domainft reports), over the words the truncated inputs kept.
Usage: python bench/peer_ner_script.py CORPUS_DIR MODEL_DIR OUT_DIR [--seed 13] [--epochs 3]
"""
import argparse
import json
import resource
import time

import numpy as np
from datasets import Dataset
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    Trainer,
    TrainingArguments,
    set_seed,
)

parser = argparse.ArgumentParser()
parser.add_argument("corpus")
parser.add_argument("model_dir")
parser.add_argument("out_dir")
parser.add_argument("--seed", type=int, default=13)
parser.add_argument("--epochs", type=float, default=3)
cli = parser.parse_args()
corpus, model_dir, out_dir = cli.corpus, cli.model_dir, cli.out_dir
set_seed(cli.seed)


def read(name):
    sentences, words, tags = [], [], []
    for line in open(f"{corpus}/{name}.tsv", encoding="utf-8"):
        line = line.strip()
        if not line:
            if words:
                sentences.append((words, tags))
            words, tags = [], []
            continue
        w, t = line.split("\t")
        words.append(w)
        tags.append(t)
    if words:
        sentences.append((words, tags))
    return sentences


splits = {"train": read("train"), "validation": read("devel"), "test": read("test")}
labels = sorted({t for _, tags in splits["train"] for t in tags})
label2id = {t: i for i, t in enumerate(labels)}
tokenizer = AutoTokenizer.from_pretrained(model_dir)


def encode(batch):
    enc = tokenizer(batch["tokens"], truncation=True, max_length=128, is_split_into_words=True)
    enc["labels"] = []
    for i, tags in enumerate(batch["tags"]):
        previous, row = None, []
        for w in enc.word_ids(i):
            row.append(-100 if w is None or w == previous else label2id[tags[w]])
            previous = w
        enc["labels"].append(row)
    return enc


data = {name: Dataset.from_dict({"tokens": [w for w, _ in s], "tags": [t for _, t in s]})
        .map(encode, batched=True, remove_columns=["tokens", "tags"]) for name, s in splits.items()}
model = AutoModelForTokenClassification.from_pretrained(
    model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)


def tags_of(predictions, label_ids):
    pred = np.argmax(predictions, axis=-1)
    gold_tags = [[labels[g] for g in row if g != -100] for row in label_ids]
    pred_tags = [[labels[p] for p, g in zip(prow, row) if g != -100] for prow, row in zip(pred, label_ids)]
    return gold_tags, pred_tags


def compute_metrics(p):
    gold, pred = tags_of(p.predictions, p.label_ids)
    return {"f1": f1_score(gold, pred)}


args = TrainingArguments(
    output_dir=out_dir, eval_strategy="epoch", save_strategy="epoch", learning_rate=5e-5,
    per_device_train_batch_size=8, per_device_eval_batch_size=8, num_train_epochs=cli.epochs,
    load_best_model_at_end=True, metric_for_best_model="f1", save_total_limit=1,
    report_to=[], seed=cli.seed, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                  data_collator=DataCollatorForTokenClassification(tokenizer), compute_metrics=compute_metrics)
start = time.perf_counter()
trainer.train()
wall = time.perf_counter() - start
out = trainer.predict(data["test"])
gold, pred = tags_of(out.predictions, out.label_ids)
words_total = sum(len(w) for w, _ in splits["test"])
strict = {"mode": "strict", "scheme": IOB2}
print(json.dumps({"tool": "peer run_ner-style script", "test_f1": f1_score(gold, pred, **strict),
                  "test_precision": precision_score(gold, pred, **strict),
                  "test_recall": recall_score(gold, pred, **strict),
                  "test_f1_default_mode": f1_score(gold, pred), "words_scored": sum(map(len, gold)),
                  "words_total": words_total, "seed": cli.seed, "train_wall_s": wall, "epochs": cli.epochs,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
