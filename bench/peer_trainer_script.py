"""The peer: a plain Hugging Face Trainer script of the kind users write from the tutorials.

Pads every text to max_length 64, 3 epochs at lr 2e-5, batch 16, evaluation each epoch, best
checkpoint restored. Reads train/validation/test CSVs (text,label) and prints one JSON line.
Usage: python bench/peer_trainer_script.py SPLIT_DIR MODEL_DIR OUT_DIR
"""
import csv
import json
import resource
import sys
import time

from datasets import Dataset
from sklearn.metrics import accuracy_score, f1_score
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer,
                          TrainingArguments, set_seed)

split_dir, model_dir, out_dir = sys.argv[1:4]
set_seed(13)


def read(name):
    with open(f"{split_dir}/{name}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


rows = {name: read(name) for name in ("train", "validation", "test")}
labels = sorted({r["label"] for r in rows["train"]})
label2id = {label: i for i, label in enumerate(labels)}
tokenizer = AutoTokenizer.from_pretrained(model_dir)


def to_dataset(items):
    ds = Dataset.from_dict({"text": [r["text"] for r in items], "label": [label2id[r["label"]] for r in items]})
    return ds.map(lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=64),
                  batched=True)


data = {name: to_dataset(items) for name, items in rows.items()}
model = AutoModelForSequenceClassification.from_pretrained(
    model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)


def compute_metrics(pred):
    y = pred.predictions.argmax(-1)
    return {"accuracy": accuracy_score(pred.label_ids, y),
            "f1": f1_score(pred.label_ids, y, average="macro")}


args = TrainingArguments(
    output_dir=out_dir, eval_strategy="epoch", save_strategy="epoch", learning_rate=2e-5,
    per_device_train_batch_size=16, per_device_eval_batch_size=16, num_train_epochs=3,
    weight_decay=0.01, load_best_model_at_end=True, metric_for_best_model="f1", save_total_limit=1,
    report_to=[], seed=13, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                  compute_metrics=compute_metrics)
start = time.perf_counter()
trainer.train()
wall = time.perf_counter() - start
test = trainer.evaluate(data["test"], metric_key_prefix="test")
print(json.dumps({"tool": "peer Trainer script (pad 64, 3 epochs)", "test_accuracy": test["test_accuracy"],
                  "test_macro_f1": test["test_f1"], "train_wall_s": wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
