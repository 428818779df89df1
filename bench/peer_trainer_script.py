"""The peer: what does a plain Hugging Face Trainer script, of the kind users write from the tutorials,
score on the same split as domainft? (Run by bench/recipes.py and bench/finance_phrasebank.py.)

Pads every text to max_length 64, 3 epochs at lr 2e-5 (--lr), batch 16, evaluation each epoch, best
checkpoint restored. Reads train/validation/test CSVs (text,label; text,text_pair,label for pairs) and
prints one JSON line;
--predictions also writes the predicted test labels (a JSON list, in test.csv order).
Usage: python bench/peer_trainer_script.py SPLIT_DIR MODEL_DIR OUT_DIR
           [--seed 13] [--epochs 3] [--max-length 64] [--lr 2e-5] [--predictions FILE]
"""
import argparse
import csv
import json
import resource
import time

from datasets import Dataset
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

parser = argparse.ArgumentParser()
parser.add_argument("split_dir")
parser.add_argument("model_dir")
parser.add_argument("out_dir")
parser.add_argument("--seed", type=int, default=13)
parser.add_argument("--epochs", type=float, default=3)
parser.add_argument("--max-length", type=int, default=64)
parser.add_argument("--lr", type=float, default=2e-5, help="the tutorials' 2e-5 unless told (a small base wants more)")
parser.add_argument("--predictions")
cli = parser.parse_args()
split_dir, model_dir, out_dir = cli.split_dir, cli.model_dir, cli.out_dir
set_seed(cli.seed)


def read(name):
    with open(f"{split_dir}/{name}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


rows = {name: read(name) for name in ("train", "validation", "test")}
labels = sorted({r["label"] for r in rows["train"]})
label2id = {label: i for i, label in enumerate(labels)}
tokenizer = AutoTokenizer.from_pretrained(model_dir)


def to_dataset(items):
    # A text pair (a text_pair column) goes in as the tokenizer's second sequence, truncated longest-first.
    pairs = "text_pair" in items[0]
    ds = Dataset.from_dict({"text": [r["text"] for r in items], "label": [label2id[r["label"]] for r in items],
                            **({"text_pair": [r["text_pair"] for r in items]} if pairs else {})})
    return ds.map(lambda b: tokenizer(b["text"], b["text_pair"] if pairs else None, padding="max_length",
                                      truncation=True, max_length=cli.max_length), batched=True)


data = {name: to_dataset(items) for name, items in rows.items()}
model = AutoModelForSequenceClassification.from_pretrained(
    model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)


def compute_metrics(pred):
    y = pred.predictions.argmax(-1)
    return {"accuracy": accuracy_score(pred.label_ids, y),
            "f1": f1_score(pred.label_ids, y, average="macro"),
            "micro_f1": f1_score(pred.label_ids, y, average="micro")}


args = TrainingArguments(
    output_dir=out_dir, eval_strategy="epoch", save_strategy="epoch", learning_rate=cli.lr,
    per_device_train_batch_size=16, per_device_eval_batch_size=16, num_train_epochs=cli.epochs,
    weight_decay=0.01, load_best_model_at_end=True, metric_for_best_model="f1", save_total_limit=1,
    report_to=[], seed=cli.seed, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                  compute_metrics=compute_metrics)
start = time.perf_counter()
trainer.train()
wall = time.perf_counter() - start
out = trainer.predict(data["test"], metric_key_prefix="test")
test = out.metrics
if cli.predictions:
    with open(cli.predictions, "w", encoding="utf-8") as f:
        json.dump([labels[i] for i in out.predictions.argmax(-1)], f)
print(json.dumps({"tool": f"peer Trainer script (pad {cli.max_length}, {cli.epochs:g} epochs, lr {cli.lr:g})",
                  "test_accuracy": test["test_accuracy"], "test_macro_f1": test["test_f1"],
                  "test_micro_f1": test["test_micro_f1"], "seed": cli.seed, "epochs": cli.epochs, "train_wall_s": wall,
                  # the best checkpoint's validation macro-F1 (what it stopped on), and every evaluation
                  "best_validation_macro_f1": trainer.state.best_metric,
                  "validation_history": [{"epoch": e["epoch"], "macro_f1": e["eval_f1"]}
                                         for e in trainer.state.log_history if "eval_f1" in e],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
