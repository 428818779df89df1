"""`domainft merge`: a generation run as one plain transformers model directory (safetensors,
tokenizer with its chat template, generation config), the LoRA adapter merged into the weights.

qlora adapters are merged into a full-precision copy of the base, never into the 4-bit weights
(methods/qlora.py, MERGE_NOTE); the merged model's validation loss is measured beside the
adapter's, so the difference that makes is a number, not a guess.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from domainft.atomic import staged_dir
from domainft.errors import DomainftError
from domainft.methods.qlora import MERGE_NOTE
from domainft.model import load
from domainft.prepare import encode_splits, read_data
from domainft.rundir import RunDir, method_from_manifest, read_manifest, run_dir_of

MAX_CHECKED = 64  # validation pairs the losses are compared on


@dataclass
class MergeResult:
    dir: Path
    loss_adapter: float | None  # validation loss of the run's model as trained (4-bit base for qlora)
    loss_merged: float | None


def merge_run(run_dir: str | Path, out: str | Path | None = None, echo=print) -> MergeResult:
    run = run_dir_of(run_dir)
    task = read_manifest(run.model_dir).get("task")
    if task != "generation":
        raise DomainftError(f"merge: {run.path} is a {task} run; `domainft export {run.path}` writes its "
                            "deployable form (LoRA merged, ONNX)")
    trained = load(run.model_dir)
    tuning = trained.manifest["tuning"]
    plain = method_from_manifest(trained.manifest).to_plain(trained.model).eval()
    if tuning["method"] == "qlora":
        echo(MERGE_NOTE)
    validation = _validation(run, trained)
    collate = trained.task.collator(trained.tokenizer)
    losses = (mean_loss(trained.model, collate, validation),
              mean_loss(plain, collate, validation)) if validation is not None else (None, None)
    out = Path(out or run.merged_dir)
    with staged_dir(out) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        trained.tokenizer.save_pretrained(tmp)
        manifest = {**trained.manifest, "merged": {"from": str(run.path), "method": tuning["method"],
                                                   "validation_loss_adapter": losses[0],
                                                   "validation_loss_merged": losses[1]}}
        (tmp / "domainft_merge.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if losses[0] is not None:
        echo(f"validation loss ({len(validation)} pairs): {losses[0]:.4f} as trained, {losses[1]:.4f} merged")
    echo(f"merged model: {out} (loads with AutoModelForCausalLM.from_pretrained)")
    return MergeResult(out, *losses)


def _validation(run: RunDir, trained):
    """The run's first validation pairs, encoded as in training; None when the data is gone."""
    try:
        recipe = run.read_recipe("merge")
        data = read_data(trained.task, recipe)
    except DomainftError:
        return None
    encoded, _ = encode_splits(trained.task, {"validation": data.validation[:MAX_CHECKED]}, trained.tokenizer,
                               trained.labels, recipe)
    return encoded.get("validation")


def mean_loss(model, collate, dataset, batch_size: int = 8) -> float:
    """Token-weighted mean cross-entropy over the response tokens of an encoded dataset, batched
    with the task's collator (labels padded with -100)."""
    import torch

    rows = [{k: dataset[i][k] for k in ("input_ids", "attention_mask", "labels")} for i in range(len(dataset))]
    device = next(model.parameters()).device
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = collate(rows[start:start + batch_size])
        with torch.inference_mode():
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits.float()
        labels = batch["labels"][:, 1:].to(device)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                 labels.reshape(-1), ignore_index=-100, reduction="sum")
        total += float(loss)
        count += int((labels != -100).sum())
    return total / max(count, 1)
