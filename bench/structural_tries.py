"""Finance recipe, validation only: would two changes to the model or optimizer that are not recipe
options be worth making options? Each is tried as a patch on top of the toolkit.

- `mean_pooling`: the classifier reads the attention-masked mean of the last hidden states instead
  of BERT's [CLS] pooler (all-MiniLM-L6-v2 was trained as a sentence encoder with mean pooling).
- `llrd`: layer-wise learning-rate decay: layer i of L gets lr * decay^(L - i), the embeddings
  lr * decay^(L + 1), the head lr (the recipe's own optimizer, weight decay as the Trainer sets it).

Each run is the finance recipe on Financial PhraseBank 50Agree with the packaged MiniLM, export
off, the patch applied in this process; the validation macro-F1 goes to
bench/results/finance_structural.json, compared with the recipe's own (in its comment).

    python bench/structural_tries.py mean_pooling --seed 13
    python bench/structural_tries.py llrd --decay 0.85 --seed 13 --set train.lr=8e-5
"""
from __future__ import annotations

import argparse
import json
import re

from domainft import pipeline
from domainft.recipe import Recipe, parse_overrides

from runner import FINANCE_RECIPE, FPB, OUT, RESULTS, load_results, save_results


def mean_pooling() -> None:
    """Patch the classification task to build BERT models whose classifier reads the masked mean."""
    import torch
    from transformers import BertForSequenceClassification
    from transformers.modeling_outputs import SequenceClassifierOutput

    from domainft.tasks.classification import ClassificationTask

    class MeanPooled(BertForSequenceClassification):
        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
            hidden = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            logits = self.classifier(self.dropout(pooled))
            loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    ClassificationTask.model_class = property(lambda self: MeanPooled)


def llrd(decay: float) -> None:
    """Patch the Trainer's optimizer: one parameter group per (learning rate, weight decay)."""
    from transformers import Trainer

    def create_optimizer(self):
        if self.optimizer is None:
            layers = self.model.config.num_hidden_layers
            decayed = set(self.get_decay_parameter_names(self.model))
            groups: dict[tuple, list] = {}
            for name, param in self.model.named_parameters():
                if not param.requires_grad:
                    continue
                layer = re.search(r"\.layer\.(\d+)\.", name)
                depth = layers - int(layer.group(1)) if layer else layers + 1 if "embeddings" in name else 0
                key = (self.args.learning_rate * decay ** depth, self.args.weight_decay if name in decayed else 0.0)
                groups.setdefault(key, []).append(param)
            cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = cls([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
                                 **kwargs)
        return self.optimizer

    Trainer.create_optimizer = create_optimizer


def apply_change(change: str, decay: float) -> str:
    """Patch the toolkit in this process; the change's tag for the run directory."""
    if change == "mean_pooling":
        mean_pooling()
        return change
    llrd(decay)
    return f"llrd{decay}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("change", choices=["mean_pooling", "llrd"])
    p.add_argument("--decay", type=float, default=0.85, help="llrd: per-layer factor")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--data", default=str(FPB), help="default Financial PhraseBank 50Agree in ../shared")
    args = p.parse_args(argv)

    tag = apply_change(args.change, args.decay)
    recipe = Recipe.from_yaml(FINANCE_RECIPE).override({
        "data.path": args.data, "base": "minilm", "train.seed": args.seed, "export.enabled": False,
        "output.dir": str(OUT / "structural" / f"{tag}_s{args.seed}"), "output.overwrite": True,
        **parse_overrides(args.overrides)})
    metrics = pipeline.run(recipe, progress=False).metrics
    row = {"change": args.change, "decay": args.decay if args.change == "llrd" else None, "seed": args.seed,
           "overrides": args.overrides, "data": args.data, "validation": metrics["validation"],
           "epochs": metrics["train"]["epochs_run"], "train_wall_s": metrics["train"]["wall_time_s"]}
    path = RESULTS / "finance_structural.json"
    save_results(path, [*load_results(path, []), row])
    print(json.dumps({k: row[k] for k in ("change", "decay", "seed", "overrides", "epochs")}),
          f"validation macro-F1 {100 * metrics['validation']['macro_f1']:.2f}")


if __name__ == "__main__":
    main()
