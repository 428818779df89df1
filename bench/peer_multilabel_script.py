"""The multi-label peer: a plain Hugging Face Trainer script as the tutorials write it, on the same
split as domainft (bench/multilabel_cuad.py writes it from domainft's data bundle).

problem_type="multi_label_classification" (sigmoid + BCE), every text padded to max_length 64,
3 epochs at lr 2e-5, batch 16, evaluation each epoch, best checkpoint (micro-F1) restored, a label
predicted when its probability is at least 0.5. Reads SPLIT_DIR/{train,validation,test}.jsonl
({"text", "labels": [...]}) and SPLIT_DIR/labels.json; prints one JSON line.
Usage: python bench/peer_multilabel_script.py SPLIT_DIR MODEL_DIR OUT_DIR
           [--seed 13] [--epochs 3] [--max-length 64] [--lr 2e-5]
"""
import argparse
import json
import resource
import time

import numpy as np
from datasets import Dataset
from sklearn.metrics import f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

parser = argparse.ArgumentParser()
parser.add_argument("split_dir")
parser.add_argument("model_dir")
parser.add_argument("out_dir")
parser.add_argument("--seed", type=int, default=13)
parser.add_argument("--epochs", type=float, default=3)
parser.add_argument("--max-length", type=int, default=64)
parser.add_argument("--lr", type=float, default=2e-5, help="the tutorials' 2e-5 unless told (a small base wants more)")
cli = parser.parse_args()
set_seed(cli.seed)
THRESHOLD = 0.5


def read(name):
    with open(f"{cli.split_dir}/{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


labels = json.load(open(f"{cli.split_dir}/labels.json", encoding="utf-8"))
label2id = {label: i for i, label in enumerate(labels)}
rows = {name: read(name) for name in ("train", "validation", "test")}
tokenizer = AutoTokenizer.from_pretrained(cli.model_dir)


def multi_hot(names):
    row = [0.0] * len(labels)
    for name in names:
        row[label2id[name]] = 1.0
    return row


def to_dataset(items):
    ds = Dataset.from_dict({"text": [r["text"] for r in items], "labels": [multi_hot(r["labels"]) for r in items]})
    return ds.map(lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=cli.max_length),
                  batched=True)


data = {name: to_dataset(items) for name, items in rows.items()}
model = AutoModelForSequenceClassification.from_pretrained(
    cli.model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id,
    problem_type="multi_label_classification")


def compute_metrics(pred):
    y = pred.label_ids >= 0.5
    p = 1 / (1 + np.exp(-pred.predictions)) >= THRESHOLD
    return {"micro_f1": f1_score(y, p, average="micro", zero_division=0),
            "macro_f1": f1_score(y, p, average="macro", zero_division=0),
            "samples_f1": f1_score(y, p, average="samples", zero_division=1.0),
            "subset_accuracy": float((y == p).all(1).mean())}


args = TrainingArguments(
    output_dir=cli.out_dir, eval_strategy="epoch", save_strategy="epoch", learning_rate=cli.lr,
    per_device_train_batch_size=16, per_device_eval_batch_size=16, num_train_epochs=cli.epochs,
    weight_decay=0.01, load_best_model_at_end=True, metric_for_best_model="micro_f1", save_total_limit=1,
    report_to=[], seed=cli.seed, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                  compute_metrics=compute_metrics)
start = time.perf_counter()
trainer.train()
wall = time.perf_counter() - start
test = trainer.predict(data["test"], metric_key_prefix="test").metrics
print(json.dumps({"tool": f"peer Trainer script (multi-label, pad {cli.max_length}, {cli.epochs:g} epochs, "
                          f"lr {cli.lr:g}, threshold {THRESHOLD})",
                  **{k: test[f"test_{k}"] for k in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy")},
                  "counts": {name: len(items) for name, items in rows.items()},
                  "seed": cli.seed, "epochs": cli.epochs, "train_wall_s": wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
