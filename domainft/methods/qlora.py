"""QLoRA: the base loaded in 4-bit NF4 with double quantization (bitsandbytes) and frozen; LoRA
updates on the attention and MLP projections train in full precision on top; gradient
checkpointing on by default (train.gradient_checkpointing).

bitsandbytes runs 4-bit on the CPU as well as on CUDA; the base goes to the GPU when there is one.
The run saves only the adapter and a pointer to the base: a reload quantizes the base the same
way, so generations repeat exactly. Export merges the adapter into a *full-precision* copy of the
base, never into the 4-bit weights (W + BA re-rounded to NF4 loses the update's detail,
as the qlora and peft projects report).
"""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import Field

from domainft.errors import DomainftError
from domainft.methods.base import ModelContext, register_method
from domainft.methods.lora import LoraOptions, LoraTuning

MERGE_NOTE = ("qlora: the adapter is merged into a full-precision (float32) copy of the base, not into "
              "the 4-bit NF4 weights it was trained on (re-rounding W + BA to 4 bits would lose much of "
              "the update). The merged model's outputs therefore differ slightly from the 4-bit model's; "
              "quantize the merged model afterwards if 4-bit inference is wanted.")


class QLoraOptions(LoraOptions):
    method: Literal["qlora"] = "qlora"  # type: ignore[assignment]
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type of the frozen base")
    double_quant: bool = Field(True, description="quantize the quantization constants too (saves "
                                                 "about 0.4 bits per weight)")
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="dtype the 4-bit weights are dequantized to for each matmul; auto: "
                            "bfloat16 on a GPU that has it, else float32")


@register_method("qlora")
class QLoraTuning(LoraTuning):
    Options = QLoraOptions
    default_lr = 2e-4  # the QLoRA paper's for models up to 13B
    tasks = ("generation",)
    summary = "LoRA on a 4-bit quantized decoder base"
    default_gradient_checkpointing = True

    def quantization_config(self):
        import torch
        from transformers import BitsAndBytesConfig

        opts: QLoraOptions = self.options  # type: ignore[assignment]
        dtype = opts.compute_dtype
        if dtype == "auto":
            gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
            dtype = "bfloat16" if gpu_bf16 else "float32"
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=opts.quant_type,
                                  bnb_4bit_use_double_quant=opts.double_quant,
                                  bnb_4bit_compute_dtype=getattr(torch, dtype))

    def load_kwargs(self) -> dict:
        _require_bitsandbytes()
        import torch

        device = "cuda:0" if torch.cuda.is_available() else "cpu"
        # dtype: the weights left unquantized (embeddings, norms, head) in float32, as training casts
        # them anyway; unset, transformers loads them in float16, which a CPU computes very slowly.
        return {"quantization_config": self.quantization_config(), "device_map": {"": device},
                "dtype": torch.float32}

    def prepare(self, model, ctx: ModelContext):
        from peft import get_peft_model, prepare_model_for_kbit_training

        if not getattr(model, "is_loaded_in_4bit", False):
            raise DomainftError(f"tuning.method=qlora: the {ctx.model_type} base did not load in 4 bit; "
                                "use tuning.method=lora")
        # Freezes the base and casts its norms / embeddings to float32 for stable training;
        # gradient checkpointing is the Trainer's (train.gradient_checkpointing).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        return get_peft_model(model, self.config(ctx))

    def load(self, model_dir: Path, model_class, base_path: str):
        from peft import PeftModel
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model_dir)
        if hasattr(config, "quantization_config"):  # the saved record of how it was loaded; re-made below
            del config.quantization_config
        base = model_class.from_pretrained(base_path, config=config, use_safetensors=True, **self.load_kwargs())
        return PeftModel.from_pretrained(base, model_dir, is_trainable=False)

    def to_plain(self, model):
        """The adapter merged into a float32 copy of the base loaded from its files (MERGE_NOTE)."""
        import torch
        from peft import PeftModel, get_peft_model_state_dict, set_peft_model_state_dict

        base_model = model.get_base_model()
        full = type(base_model).from_pretrained(base_model.name_or_path, dtype=torch.float32,
                                                use_safetensors=True)
        name = model.active_adapter
        peft = PeftModel(full, copy.deepcopy(model.peft_config[name]))
        set_peft_model_state_dict(peft, get_peft_model_state_dict(model, adapter_name=name))
        return peft.merge_and_unload()


def _require_bitsandbytes() -> None:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise DomainftError("tuning.method=qlora needs bitsandbytes: pip install 'domainft[generation]' "
                            "(scripts/setup.sh installs it)")
