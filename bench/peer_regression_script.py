"""The regression peer: a plain Hugging Face Trainer script of the tutorials' kind on the same split
as domainft (run by bench/regression_scores.py).

num_labels=1 and problem_type="regression" (the model's own MSE loss on the raw scores, no
standardization), every text padded to max_length 64, 3 epochs at lr 2e-5, batch 16, evaluation
each epoch, the best epoch by validation loss restored. Reads train/validation/test JSONL
({"text", "target"}) and prints one JSON line with test Pearson, Spearman and MSE.
Usage: python bench/peer_regression_script.py SPLIT_DIR MODEL_DIR OUT_DIR
           [--seed 13] [--epochs 3] [--max-length 64]
"""
import argparse
import json
import resource
import time

import numpy as np
from datasets import Dataset
from scipy.stats import pearsonr, spearmanr
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

parser = argparse.ArgumentParser()
parser.add_argument("split_dir")
parser.add_argument("model_dir")
parser.add_argument("out_dir")
parser.add_argument("--seed", type=int, default=13)
parser.add_argument("--epochs", type=float, default=3)
parser.add_argument("--max-length", type=int, default=64)
cli = parser.parse_args()
set_seed(cli.seed)


def read(name):
    with open(f"{cli.split_dir}/{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


tokenizer = AutoTokenizer.from_pretrained(cli.model_dir)


def to_dataset(items):
    ds = Dataset.from_dict({"text": [r["text"] for r in items], "label": [float(r["target"]) for r in items]})
    return ds.map(lambda b: tokenizer(b["text"], padding="max_length", truncation=True, max_length=cli.max_length),
                  batched=True)


data = {name: to_dataset(read(name)) for name in ("train", "validation", "test")}
model = AutoModelForSequenceClassification.from_pretrained(cli.model_dir, num_labels=1, problem_type="regression")


def compute_metrics(pred):
    y, t = np.asarray(pred.predictions).reshape(-1), np.asarray(pred.label_ids).reshape(-1)
    return {"pearson": float(pearsonr(y, t)[0]), "spearman": float(spearmanr(y, t)[0]),
            "mse": float(np.mean((y - t) ** 2))}


args = TrainingArguments(
    output_dir=cli.out_dir, eval_strategy="epoch", save_strategy="epoch", learning_rate=2e-5,
    per_device_train_batch_size=16, per_device_eval_batch_size=16, num_train_epochs=cli.epochs,
    weight_decay=0.01, load_best_model_at_end=True, save_total_limit=1, report_to=[], seed=cli.seed,
    disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                  compute_metrics=compute_metrics)
start = time.perf_counter()
trainer.train()
wall = time.perf_counter() - start
test = trainer.predict(data["test"], metric_key_prefix="test").metrics
print(json.dumps({"tool": f"peer Trainer script (pad {cli.max_length}, {cli.epochs:g} epochs)",
                  "test_pearson": test["test_pearson"], "test_spearman": test["test_spearman"],
                  "test_mse": test["test_mse"], "seed": cli.seed, "epochs": cli.epochs, "train_wall_s": wall,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
