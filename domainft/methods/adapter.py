"""Bottleneck adapters (the `adapters` library): small down/up projections inside each layer,
Pfeiffer placement (after the feed-forward block) or Houlsby (after attention and feed-forward).

Only the adapter and the head are trained and saved; a reload puts them back on the base.
Bottleneck adapters cannot be merged into the base weights, so export keeps them in the graph.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from domainft.errors import DomainftError
from domainft.methods.base import ModelContext, TuningMethod, TuningOptions, register_method

ADAPTER_NAME = "domain"
HEAD_FILE = "head.safetensors"  # weights trained outside the adapter: the head, a missing pooler
PLACEMENTS = {"ffn": "seq_bn", "attention_and_ffn": "double_seq_bn"}


class AdapterOptions(TuningOptions):
    method: Literal["adapter"] = "adapter"
    reduction_factor: int = Field(16, ge=1, description="hidden size / bottleneck size")
    placement: Literal["ffn", "attention_and_ffn"] = Field(
        "ffn", description="ffn: after the feed-forward block (Pfeiffer); attention_and_ffn: after "
                           "both sub-layers (Houlsby, about twice the parameters)")
    non_linearity: Literal["relu", "gelu", "swish", "tanh"] = "relu"
    # On by default: with the pooler frozen, FPB validation macro-F1 reached 0.797 after 3 epochs;
    # trained (+148k parameters on MiniLM), 0.825 after 2. A sentence-embedding base's pooler was
    # never trained for the [CLS] features the head reads.
    train_pooler: bool = Field(True, description="also train the base's pooler (the dense layer "
                               "on [CLS] the classification head reads)")


@register_method("adapter")
class AdapterTuning(TuningMethod):
    Options = AdapterOptions
    default_lr = 1e-3

    def adapter_config(self):
        from adapters import AdapterConfig

        opts: AdapterOptions = self.options  # type: ignore[assignment]
        return AdapterConfig.load(PLACEMENTS[opts.placement], reduction_factor=opts.reduction_factor,
                                  non_linearity=opts.non_linearity)

    def prepare(self, model, ctx: ModelContext):
        import adapters

        try:
            adapters.init(model)
        except (ValueError, KeyError, AttributeError) as e:
            raise DomainftError(f"tuning.method=adapter: the adapters library does not support "
                                f"{ctx.model_type} models ({e}); use tuning.method=lora") from None
        model.add_adapter(ADAPTER_NAME, config=self.adapter_config())
        model.train_adapter(ADAPTER_NAME)  # freezes everything else
        model.set_active_adapters(ADAPTER_NAME)
        for module in [*ctx.new_modules, *(self.poolers(model) if self.options.train_pooler else [])]:
            for p in model.get_submodule(module).parameters():
                p.requires_grad = True
        return model

    @staticmethod
    def poolers(model) -> list[str]:
        return [name for name, _ in model.named_modules() if name.split(".")[-1] == "pooler"]

    def save(self, model, out_dir: Path) -> None:
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_adapter(str(out_dir), ADAPTER_NAME, use_safetensors=True)
        head = {n: p.detach().contiguous() for n, p in model.named_parameters()
                if p.requires_grad and ".adapters." not in n}
        save_file(head, str(out_dir / HEAD_FILE))
        model.config.save_pretrained(out_dir)  # labels and head size, to rebuild the base

    def load(self, model_dir: Path, model_class, base_path: str):
        import adapters
        from safetensors.torch import load_file
        from transformers import AutoConfig

        from domainft.lexicon import load_base

        config = AutoConfig.from_pretrained(model_dir)
        if hasattr(config, "adapters"):
            del config.adapters  # the adapter setup is rebuilt by load_adapter below
        model = load_base(model_class, base_path, config, model_dir)
        adapters.init(model)
        model.load_adapter(str(model_dir), load_as=ADAPTER_NAME, use_safetensors=True,
                           set_active=True)
        missing = set(load_file(str(model_dir / HEAD_FILE))) - set(dict(model.named_parameters()))
        if missing:
            raise DomainftError(f"{model_dir}: {HEAD_FILE} holds weights this base lacks "
                                f"({', '.join(sorted(missing)[:3])}); was it trained on another base?")
        model.load_state_dict(load_file(str(model_dir / HEAD_FILE)), strict=False)
        return model
