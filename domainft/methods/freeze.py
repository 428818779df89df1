"""Freeze-tuning: the embeddings and the lower encoder layers stay as pretrained; the top
`train_top_layers` layers, the pooler and the head are trained. The whole model is saved, so it
reloads with plain transformers."""
from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import nn

from domainft.errors import DomainftError
from domainft.methods.base import ModelContext, register_method
from domainft.methods.full import FullOptions, FullTuning


class FreezeOptions(FullOptions):
    method: Literal["freeze"] = "freeze"  # type: ignore[assignment]
    train_top_layers: int = Field(2, ge=0, description="encoder layers trained, counted from the top; "
                                                       "0 trains only the pooler and the head")


@register_method("freeze")
class FreezeTuning(FullTuning):
    Options = FreezeOptions
    default_lr = 2e-4

    def prepare(self, model, ctx: ModelContext):
        n_top: int = self.options.train_top_layers  # type: ignore[attr-defined]
        layers_name, layers = layer_stack(model)
        if n_top > len(layers):
            raise DomainftError(f"tuning.train_top_layers: {n_top}, but the base has only {len(layers)} "
                                f"layers; choose 0..{len(layers)} (or tuning.method=full)")
        frozen = [f"{layers_name}.{i}." for i in range(len(layers) - n_top)]
        frozen.append(embeddings_prefix(model))
        for name, p in model.named_parameters():
            p.requires_grad = not any(name.startswith(prefix) for prefix in frozen)
        for module in ctx.new_modules:  # the head is always trained
            for p in model.get_submodule(module).parameters():
                p.requires_grad = True
        return model


def layer_stack(model) -> tuple[str, nn.ModuleList]:
    """The encoder's stack of transformer blocks: the ModuleList holding the most parameters."""
    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m)]
    if not lists:
        raise DomainftError(f"tuning.method=freeze: found no stack of layers in {type(model).__name__}; "
                            "use tuning.method=full or lora")
    return max(lists, key=lambda item: sum(p.numel() for p in item[1].parameters()))


def embeddings_prefix(model) -> str:
    """Parameter-name prefix of the embedding block (word + position embeddings and their norm)."""
    word = model.get_input_embeddings()
    name = next(n for n, m in model.named_modules() if m is word)
    parent = name.rsplit(".", 1)[0] if "." in name else name
    # BERT-style models group embeddings in their own module (bert.embeddings); decoder-style ones
    # hang the token embedding off the backbone itself, whose prefix would freeze everything.
    layers_name, _ = layer_stack(model)
    return name + "." if layers_name.startswith(parent + ".") else parent + "."
