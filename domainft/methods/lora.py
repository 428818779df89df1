"""LoRA (peft): low-rank updates on the attention and feed-forward projections.

The task head (and any module the base lacked, such as a missing pooler) is trained in full and
saved through `modules_to_save`, so a reloaded model predicts exactly as the trained one
(peft#577, #876: a head left out of modules_to_save reloads random).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field

from domainft.methods.base import ModelContext, TuningMethod, TuningOptions, register_method

# Trainer checkpoints of a lexicon-extended model carry the whole resized embedding (peft's "auto"),
# which is what resuming needs; the final save keeps only the trained rows. Not worth a warning.
warnings.filterwarnings("ignore", message="Setting `save_embedding_layers` to `True`")

# Linear layers worth adapting, per architecture: attention and feed-forward projections.
DEFAULT_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "key", "value", "dense"],
    "roberta": ["query", "key", "value", "dense"],
    "xlm-roberta": ["query", "key", "value", "dense"],
    "electra": ["query", "key", "value", "dense"],
    "camembert": ["query", "key", "value", "dense"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj", "dense"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


class LoraOptions(TuningOptions):
    method: Literal["lora"] = "lora"
    r: int = Field(8, ge=1, le=1024, description="rank of the update matrices")
    alpha: float = Field(16, gt=0, description="scaling numerator (update scaled by alpha / r)")
    # 0 (peft's default): on FPB validation it scored as well as 0.1 (0.823 vs 0.820 macro-F1) while
    # each adapted layer skips a dropped-out copy of its input: less memory (3.2 vs 3.5 GB), faster steps.
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the low-rank branch's input")
    target_modules: list[str] | None = Field(
        None, description="module name suffixes to adapt; default depends on the architecture"
    )


def default_targets(model_type: str) -> list[str] | str:
    if model_type in DEFAULT_TARGETS:
        return DEFAULT_TARGETS[model_type]
    return "all-linear"  # peft picks every linear layer except the output head


@register_method("lora")
class LoraTuning(TuningMethod):
    Options = LoraOptions
    default_lr = 5e-4

    def config(self, ctx: ModelContext):
        from peft import LoraConfig

        opts: LoraOptions = self.options  # type: ignore[assignment]
        return LoraConfig(
            task_type=ctx.task_type,
            r=opts.r,
            lora_alpha=opts.alpha,
            lora_dropout=opts.dropout,
            target_modules=opts.target_modules or default_targets(ctx.model_type),
            modules_to_save=list(ctx.new_modules),
            exclude_modules=list(ctx.new_modules) or None,
            # Lexicon tokens: only their rows of the embedding train and are saved (peft TrainableTokens).
            trainable_token_indices=list(ctx.new_token_ids) or None,
        )

    def prepare(self, model, ctx: ModelContext):
        from peft import get_peft_model

        return get_peft_model(model, self.config(ctx))

    def save(self, model, out_dir: Path) -> None:
        # The lexicon's rows are in the adapter file already; never the whole resized embedding.
        model.save_pretrained(out_dir, safe_serialization=True, save_embedding_layers=False)
        # The task config (labels, head size) lets the base be rebuilt with the right head.
        model.get_base_model().config.save_pretrained(out_dir)

    def load(self, model_dir: Path, model_class, base_path: str):
        from peft import PeftModel
        from transformers import AutoConfig

        from domainft.lexicon import load_base

        base = load_base(model_class, base_path, AutoConfig.from_pretrained(model_dir), model_dir)
        return PeftModel.from_pretrained(base, model_dir, is_trainable=False)

    def to_plain(self, model):
        import copy

        # Merge into a copy: the tuned model stays usable (and saveable) as a PeftModel.
        return copy.deepcopy(model).merge_and_unload()
