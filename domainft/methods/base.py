"""The tuning-method contract: everything the pipeline, export and merge ask of a method.

A method is a TuningMethod subclass registered by name (`tuning.method: NAME` in a recipe):

    @register_method("head_only")
    class HeadOnly(TuningMethod):
        Options = HeadOnlyOptions        # its recipe options (pydantic; unknown options are errors)
        def prepare(self, model, ctx): ...   # required: set requires_grad, maybe wrap the model
        def load(self, model_dir, model_class, base_path): ...   # required: rebuild what save wrote

Optional hooks with working defaults: load_kwargs (extra from_pretrained arguments), save
(save_pretrained), to_plain (a plain transformers model for ONNX export / merge). Class settings:
default_lr, tasks (None = every task), summary, default_gradient_checkpointing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

from domainft.errors import DomainftError
from domainft.registry import Registry

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class TuningOptions(BaseModel):
    """Options of one method; subclasses add fields. Unknown options are errors."""

    model_config = ConfigDict(extra="forbid")
    method: str


@dataclass
class ModelContext:
    """What a method needs to know about the model it is given."""

    model_type: str  # config.model_type, e.g. "bert", "roberta"
    # Modules created fresh for the task (the head, a missing pooler): always trained and saved.
    new_modules: list[str] = field(default_factory=list)
    task_type: str = "SEQ_CLS"  # peft TaskType name
    # Token ids the lexicon added: their embedding rows are new and must be trained and saved.
    new_token_ids: list[int] = field(default_factory=list)


class TuningMethod:
    """Prepare a model for training, save what was trained, reload it, flatten it for export."""

    name: ClassVar[str]
    Options: ClassVar[type[TuningOptions]] = TuningOptions
    # Used when the recipe leaves train.lr unset: methods that train fewer weights want a larger step.
    default_lr: ClassVar[float] = 1e-4
    # The tasks the method applies to (None: every task); `summary` says why in the recipe error.
    tasks: ClassVar[tuple[str, ...] | None] = None
    summary: ClassVar[str] = ""
    # Used when the recipe leaves train.gradient_checkpointing unset.
    default_gradient_checkpointing: ClassVar[bool] = False

    def __init__(self, options: TuningOptions):
        self.options = options

    @classmethod
    def from_tuning(cls, tuning: dict) -> TuningMethod:
        """The method as a saved manifest's `tuning` entry describes it (options re-validated)."""
        return cls(cls.Options.model_validate(tuning))

    def load_kwargs(self) -> dict:
        """Extra from_pretrained arguments for the base (a quantization config, a device map)."""
        return {}

    def prepare(self, model: PreTrainedModel, ctx: ModelContext):
        """Required. Return the model to train (may wrap it); set requires_grad as the method wants.
        ctx.new_modules (the head) and ctx.new_token_ids (lexicon rows) must end up trained."""
        raise NotImplementedError(f"tuning method {self.name!r} does not implement prepare()")

    def save(self, model, out_dir: Path) -> None:
        model.save_pretrained(out_dir, safe_serialization=True)

    def load(self, model_dir: Path, model_class, base_path: str):
        """Rebuild the trained model from `save` output.

        model_class: the task's transformers auto class; base_path: the resolved base, for
        methods that save only what they trained. Required.
        """
        raise NotImplementedError(f"tuning method {self.name!r} does not implement load()")

    def to_plain(self, model) -> PreTrainedModel:
        """A transformers model computing the same function, for export; leaves `model` as it is."""
        return model


METHODS: Registry[type[TuningMethod]] = Registry("tuning method")


def register_method(name: str, replace: bool = False):
    """Class decorator: make a TuningMethod subclass available as `tuning.method: name`."""

    def add(cls: type[TuningMethod]) -> type[TuningMethod]:
        if not (isinstance(cls, type) and issubclass(cls, TuningMethod)):
            raise DomainftError(f"register_method({name!r}): {cls!r} is not a TuningMethod subclass")
        for hook in ("prepare", "load"):
            if getattr(cls, hook) is getattr(TuningMethod, hook):
                raise DomainftError(f"register_method({name!r}): {cls.__qualname__} must implement {hook}() "
                                    "(see domainft/methods/base.py)")
        METHODS.add(name, cls, replace)
        cls.name = name
        return cls

    return add


def get_method(name: str) -> type[TuningMethod]:
    return METHODS.get(name)


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as the weights they pack."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(_numel(p) for p in model.parameters())
    return trainable, total


def _numel(p) -> int:
    if type(p).__name__ == "Params4bit":  # bitsandbytes packs two 4-bit values per storage byte
        return p.numel() * 2 * p.element_size()
    return p.numel()


def artefact_size(path: Path) -> int:
    """Bytes on disk under `path` (the saved model directory)."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
