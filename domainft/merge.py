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

MAX_CHECKED = 64  # validation pairs the losses are compared on


@dataclass
class MergeResult:
    dir: Path
    loss_adapter: float | None  # validation loss of the run's model as trained (4-bit base for qlora)
    loss_merged: float | None


def merge_run(run_dir: str | Path, out: str | Path | None = None, echo=print) -> MergeResult:
    from domainft.methods import get_method
    from domainft.methods.qlora import MERGE_NOTE
    from domainft.model import MANIFEST, load, model_dir_of

    model_dir = model_dir_of(run_dir)
    run_dir = model_dir.parent
    task = json.loads((model_dir / MANIFEST).read_text(encoding="utf-8")).get("task")
    if task != "generation":
        raise DomainftError(f"merge: {run_dir} is a {task} run; `domainft export {run_dir}` writes its "
                            "deployable form (LoRA merged, ONNX)")
    trained = load(model_dir)
    tuning = trained.manifest["tuning"]
    method_cls = get_method(tuning["method"])
    plain = method_cls(method_cls.Options.model_validate(tuning)).to_plain(trained.model).eval()
    if tuning["method"] == "qlora":
        echo(MERGE_NOTE)
    validation = _validation(run_dir, trained)
    collate = trained.task.collator(trained.tokenizer)
    losses = (mean_loss(trained.model, collate, validation),
              mean_loss(plain, collate, validation)) if validation is not None else (None, None)
    out = Path(out or run_dir / "merged")
    with staged_dir(out) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        trained.tokenizer.save_pretrained(tmp)
        manifest = {**trained.manifest, "merged": {"from": str(run_dir), "method": tuning["method"],
                                                   "validation_loss_adapter": losses[0],
                                                   "validation_loss_merged": losses[1]}}
        (tmp / "domainft_merge.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if losses[0] is not None:
        echo(f"validation loss ({len(validation)} pairs): {losses[0]:.4f} as trained, {losses[1]:.4f} merged")
    echo(f"merged model: {out} (loads with AutoModelForCausalLM.from_pretrained)")
    return MergeResult(out, *losses)


def _validation(run_dir: Path, trained):
    """The run's first validation pairs, encoded as in training; None when the data is gone."""
    from domainft.export import saved_recipe

    try:
        recipe = saved_recipe(run_dir)
        data = trained.task.load_data(recipe.data)
    except DomainftError:
        return None
    pairs = data.validation[:MAX_CHECKED]
    return trained.task.encode(pairs, trained.tokenizer, {}, recipe.data) if pairs else None


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
