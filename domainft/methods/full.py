"""Full fine-tuning: every weight is trained and saved."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from domainft.methods.base import ModelContext, TuningMethod, TuningOptions, register_method


class FullOptions(TuningOptions):
    method: Literal["full"] = "full"


@register_method("full")
class FullTuning(TuningMethod):
    Options = FullOptions

    def prepare(self, model, ctx: ModelContext):
        for p in model.parameters():
            p.requires_grad = True
        return model

    def load(self, model_dir: Path, model_class, base_path: str):
        return model_class.from_pretrained(model_dir, use_safetensors=True)
