"""The recipe: a validated YAML description of one run.

Sections: task, base, data, lexicon, tuning, train, decision, generation, output, export. Unknown
keys, wrong types and impossible values are rejected before any work starts, each with its field
path and a hint. The data section is defined in domainft/data/spec.py, each method's options by
the method (methods/*.py), and each task checks the fields that concern it (Task.check_recipe and
Task.fields in tasks/base.py).
"""
from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml
from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, field_validator, model_validator

# The data section's schemas live with the data readers (a leaf module); they are re-exported here.
from domainft.data.spec import ColumnSpec, DataSpec, FlagSpec, SplitSpec, WideSpec
from domainft.errors import RecipeError, where_to_look
from domainft.jsonl import lone_surrogate, shown
from domainft.methods import METHODS, TuningOptions
from domainft.schema import Section, field_error
from domainft.serving import FP32_FILE, INT8_FILE  # torch-free: recipes stay cheap to import
from domainft.tasks import TASKS

# The tasks distill.py gives soft targets for (regression and generation have no distribution to soften).
DISTILL_TASKS = ("classification", "multilabel", "ner")

__all__ = ["AdaptSpec", "BaseSpec", "ColumnSpec", "DataSpec", "DecisionSpec", "DistillSpec", "EarlyStoppingSpec",
           "ExportSpec", "FlagSpec", "GenerationSpec", "LexiconSpec", "OutputSpec", "Recipe", "SplitSpec", "TrainSpec",
           "WideSpec", "apply_overrides", "parse_overrides"]



class BaseSpec(Section):
    """Which pretrained model to start from: first candidate that resolves wins."""

    name: list[str] = Field(default_factory=lambda: ["minilm"], min_length=1)
    revision: str | None = None
    trust_remote_code: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `base: minilm` and `base: [biobert, minilm]` are shorthands for `base: {name: ...}`.
        if isinstance(value, (str, list)):
            return {"name": value}
        return value

    @field_validator("name", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value



class EarlyStoppingSpec(Section):
    metric: str | None = Field(None, description="default: the task's main metric (macro_f1; ner: f1)")
    patience: int = Field(2, ge=1, description="evaluations without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")
    enabled: bool = True


class TrainSpec(Section):
    epochs: float = Field(8, gt=0, description="upper bound; early stopping usually ends sooner")
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    lr: float | None = Field(None, gt=0, lt=1, description="default: the tuning method's own "
                             "(full 1e-4, freeze 2e-4, lora 5e-4, adapter 1e-3)")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    grad_accum: int = Field(1, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    seed: int = 13
    class_weights: Literal["none", "balanced"] | dict[str, float] = "none"
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing "
                                   "(classification / ner): for noisy labels; 0.1 is the usual value")
    loss: Literal["mse", "huber"] = Field("mse", description="regression: mean squared error, or Huber "
                                          "(squared below huber_delta, linear above: robust to outliers)")
    huber_delta: float = Field(1.0, gt=0, description="regression, loss huber: where the loss turns linear, "
                               "in standardized target units when data.standardize_targets (the default)")
    eval_every: Literal["epoch"] | int = Field("epoch", description="'epoch' or a number of steps")
    group_by_length: bool = Field(True, description="batch texts of similar length: less padding")
    early_stopping: EarlyStoppingSpec = Field(default_factory=EarlyStoppingSpec)
    gradient_checkpointing: bool | None = Field(
        None, description="recompute activations in the backward pass instead of keeping them (less "
        "memory, slower steps); default: on for qlora, off otherwise")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="mixed precision of training; auto: bf16 on GPUs that support it, fp16 on older "
        "GPUs; on CPUs fp32 unless a few bf16 steps of this model measure faster here (recorded in "
        "metrics.json train.precision)")
    logging_steps: int = Field(10, ge=1, description="training loss, learning rate and gradient norm are "
                               "logged every this many steps (metrics.json train.history, trackers)")
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list, description="experiment trackers the Trainer reports to (none by default; "
        "tensorboard writes RUN_DIR/logs/ offline; mlflow and wandb read their usual environment variables)")
    deepspeed: Path | None = Field(None, description="a DeepSpeed JSON config (ZeRO stages, offload), handed "
                                   "to the Trainer; launch with torchrun / accelerate launch / deepspeed")
    fsdp: str | None = Field(None, description="PyTorch FSDP, the Trainer's option string, e.g. "
                             "'full_shard auto_wrap'; launch with torchrun / accelerate launch")
    fsdp_config: Path | dict[str, Any] | None = Field(None, description="FSDP settings (a JSON file or a "
                                                       "mapping), the Trainer's fsdp_config")

    @field_validator("report_to", mode="before")
    @classmethod
    def _trackers(cls, value):
        # `report_to: none` / `tensorboard` / `[tensorboard, mlflow]`, as the Trainer spells it.
        if value is None or value == "none" or value == ["none"]:
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("deepspeed")
    @classmethod
    def _deepspeed_config(cls, value):
        if value is not None:
            _json_file(value)
        return value

    @field_validator("fsdp_config")
    @classmethod
    def _fsdp_config(cls, value):
        if isinstance(value, (str, Path)):
            _json_file(Path(value))
            return Path(value)
        return value

    @field_validator("fsdp")
    @classmethod
    def _fsdp_options(cls, value):
        if value is None:
            return value
        known = ("full_shard", "shard_grad_op", "no_shard", "hybrid_shard", "hybrid_shard_zero2", "offload",
                 "auto_wrap")
        unknown = [word for word in value.split() if word not in known]
        if unknown:
            raise ValueError(f"unknown FSDP option {', '.join(unknown)}; the options are: {', '.join(known)}")
        return value

    @field_validator("eval_every")
    @classmethod
    def _positive_steps(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError("a number of steps must be at least 1")
        return value


def _json_file(path: Path) -> None:
    """A config file handed to the Trainer: it must exist and be JSON (checked before any work)."""
    if not Path(path).is_file():
        raise ValueError(f"{path} is not a file (relative paths start at {Path.cwd()})")
    try:
        json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None


class FromDataSpec(Section):
    """Mine lexicon terms from the training data: words the base tokenizer shreds, seen often."""

    min_pieces: int = Field(3, ge=2, description="a word must split into at least this many subwords")
    min_count: int = Field(5, ge=1, description="... and occur at least this often in train")
    max_terms: int = Field(300, ge=1, description="keep the most frequent this many")


class LexiconSpec(Section):
    """Domain terms added to the tokenizer as whole-word tokens with their own embedding rows."""

    files: list[Path] = Field(default_factory=list, description="lexicon files (lexicons/*.txt)")
    from_data: FromDataSpec | None = Field(None, description="also mine terms from the training data")
    init: Literal["subword_mean", "description"] = Field(
        "subword_mean", description="new rows start at the mean of the term's original subword "
        "embeddings, or of its description's (terms without one use their subwords)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `lexicon: [a.txt, b.txt]` / `lexicon: a.txt` list files; `from_data: true` takes defaults.
        if isinstance(value, (str, Path)):
            return {"files": [value]}
        if isinstance(value, list):
            return {"files": value}
        if isinstance(value, Mapping) and isinstance(value.get("from_data"), bool):
            return {**value, "from_data": {} if value["from_data"] else None}
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.files) or self.from_data is not None


class DecisionSpec(Section):
    """How predictions are chosen from the class probabilities (stored with the model)."""

    escalate_threshold: float | None = Field(
        None, gt=0, le=1, description="ordinal labels: predict the most severe label whose "
        "probability together with all more severe labels' reaches this, never a less severe one "
        "than the most probable; lower = less under-, more over-prediction. Unset: most probable")
    max_under_rate: float | None = Field(
        None, ge=0, lt=1, description="ordinal labels: instead of a fixed escalate_threshold, the run "
        "chooses on validation the least escalation whose under rate (predicted less severe than "
        "gold) is at most this, and keeps that threshold with the model")
    threshold: float | dict[str, float] | None = Field(
        None, description="multilabel: a fixed decision threshold on each label's probability, or one "
        "per label ({label: threshold}; unlisted labels 0.5); unset: chosen on validation as "
        "decision.thresholds says")
    thresholds: Literal["global", "per_label"] | None = Field(
        None, description="multilabel, without decision.threshold: choose on validation one threshold "
        "for all labels maximizing micro-F1 (global, the default) or one per label maximizing that "
        "label's F1 (per_label); stored with the model")

    @field_validator("threshold")
    @classmethod
    def _probability(cls, value):
        values = value.values() if isinstance(value, dict) else [] if value is None else [value]
        for v in values:
            if not 0 < v < 1:
                raise ValueError(f"a threshold is a probability between 0 and 1, exclusive (got {v!r})")
        return value


class GenerationSpec(Section):
    """task: generation: decoding defaults (stored with the model) and how validation is scored."""

    max_new_tokens: int = Field(128, ge=1, le=8192, description="default length limit of `domainft "
                                "generate` and load(...).generate")
    score_responses: Literal["auto", "always", "never"] = Field(
        "auto", description="also score greedy generations on validation/test with exact match and "
        "token F1; auto: when every validation response has at most short_response_words words")
    short_response_words: int = Field(8, ge=1, description="auto scoring's limit (short label answers)")


class AdaptSpec(Section):
    """Domain-adaptive pretraining before fine-tuning (adapt.py): masked-language-model training of
    the base on the task's own training texts (TAPT) and / or domain text files (DAPT)."""

    task_texts: bool = Field(False, description="adapt on the task's training texts (never validation or test)")
    corpus: list[Path] = Field(default_factory=list, description="domain text files: .txt (one document or "
                               "sentence per line) or .jsonl ({\"text\": ...}), gzip allowed")
    corpus_limit: int | None = Field(None, ge=1, description="at most this many corpus texts (the first)")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="share of tokens masked")
    whole_word_masking: bool = Field(True, description="mask every subword of a chosen word (WordPiece bases; "
                                     "lexicon terms are whole words)")
    epochs: float = Field(3.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps (overrides epochs)")
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(32, ge=1)
    max_length: int = Field(128, ge=8, le=8192, description="tokens per adaptation text (longer ones are cut)")
    held_out: float = Field(0.05, gt=0, lt=0.5, description="share of the adaptation texts held out: its MLM "
                            "loss (perplexity) is reported before and after, and early stopping reads it")
    patience: int = Field(2, ge=1, description="evaluations without a better held-out loss before stopping")
    eval_every: int | None = Field(None, ge=1, description="evaluate every N steps (default: every epoch)")
    head_warmup_steps: int = Field(0, ge=0, description="a base without an MLM head: train the new head alone "
                                   "this many steps before the whole model")
    seed: int = Field(0, description="the adaptation's own seed: a sweep over train.seed reuses one adapted base")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="as train.precision, for the masked-LM stage: auto is bf16 on GPUs that support "
        "it, and on CPUs only where a few bf16 masked-LM steps measure faster on this CPU")

    @property
    def enabled(self) -> bool:
        return self.task_texts or bool(self.corpus)


class DistillSpec(Section):
    """Task distillation: a finished, larger run (the teacher) gives soft targets; this recipe's base
    (the student) learns from them and from the gold labels (distill.py)."""

    teacher: Path | None = Field(None, description="a finished run directory (its model/) whose logits "
                                 "the student learns from; the section applies when it (or teacher_base) "
                                 "is set")
    teacher_base: str | None = Field(None, description="instead of teacher: train the teacher first, this "
                                     "recipe with this base (an alias, Hub id or folder), full fine-tuning "
                                     "and teacher_set; cached by recipe and data, so reruns and students "
                                     "of any method share it")
    teacher_set: list[str] = Field(default_factory=list, description="FIELD=VALUE overrides for the "
                                   "teacher_base run (e.g. [train.lr=3e-5, train.epochs=4]); "
                                   "train.seed=N gives every student seed one teacher")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the teacher term; the gold-label loss "
                         "has 1 - alpha")
    temperature: float = Field(2.0, gt=0, description="softens both distributions; the teacher term is "
                               "scaled by temperature^2 (Hinton et al.)")
    transfer: list[Path] = Field(default_factory=list, description="unlabelled in-domain text files the "
                                 "teacher labels too: .txt (one text per line) or .jsonl ({\"text\": ...} "
                                 "or a string per line), gzip allowed")
    transfer_limit: int | None = Field(None, ge=1, description="at most this many transfer texts (the first)")
    augment: int = Field(0, ge=0, le=50, description="perturbed copies of each training text the teacher "
                         "labels as extra rows, like transfer texts (each word dropped with p 0.1, then "
                         "with p 0.25 a span of 1-5 words kept; Tang et al. 2019): the teacher's targets on "
                         "texts it has not fitted carry what the gold labels cannot")

    @property
    def enabled(self) -> bool:
        return self.teacher is not None or self.teacher_base is not None


class OutputSpec(Section):
    dir: Path | None = Field(None, description="default: runs/<recipe name>")
    overwrite: bool = False
    keep_checkpoints: bool = False


class ExportSpec(Section):
    """ONNX bundle written after training (`domainft export RUN_DIR` does the same later)."""

    enabled: bool = Field(False, description="export after the run finishes")
    dir: Path | None = Field(None, description="default: <run dir>/onnx")
    opset: int = Field(17, ge=14, le=20, description="ONNX opset of the exported graph")
    int8: bool = Field(True, description=f"also write {INT8_FILE} (int8 quantization, see int8_mode)")
    int8_mode: Literal["static", "dynamic"] = Field(
        "static", description="static: activation ranges calibrated on validation examples are constants "
                              "in the graph, so a text's int8 scores never depend on the texts batched with "
                              "it; dynamic: scales computed per batch at run time (ONNX Runtime's fused "
                              "attention; the same text can score differently in another batch, so "
                              "domainft.serving runs such a model one text at a time)")
    calibration_examples: int = Field(512, ge=1, description="static int8: validation examples (evenly "
                                      "spaced) whose activation ranges set the quantization scales")
    quantization: Literal["avx2", "avx2_u8u8", "avx512", "avx512_vnni", "arm64"] = Field(
        "avx2", description="instruction set the int8 model is quantized for: avx2 = int8 weights "
                            "with 7 bits (ONNX Runtime's advice for AVX2), the others optimum's presets")
    max_int8_drop: float = Field(1.0, ge=0, le=100, description="points of validation accuracy / "
                                 "macro-F1 (ner: entity F1) int8 may lose; beyond it no int8 file")
    fuse: bool = Field(True, description="dynamic int8: fuse attention, LayerNorm and GELU with ONNX "
                       f"Runtime's transformer optimizer before quantizing ({FP32_FILE} stays plain ONNX); "
                       "static int8 quantizes the plain graph, which ONNX Runtime fuses when it loads it")


def _tuning_options(value: Any) -> TuningOptions:
    if isinstance(value, TuningOptions):
        return value
    if isinstance(value, str):
        value = {"method": value}
    if not isinstance(value, Mapping):
        raise field_error("tuning", "expected a mapping such as {method: lora, r: 8}")
    method = value.get("method", "full")
    if method not in METHODS:
        raise field_error("tuning.method", f"{method!r} is not a tuning method; choose one of: "
                                            f"{', '.join(METHODS.names())}")
    options_cls = METHODS.get(method).Options
    try:
        return options_cls.model_validate({**value, "method": method})
    except ValidationError as e:
        err = e.errors()[0]
        path = ".".join(["tuning", *map(str, err["loc"])])
        if err["type"] == "extra_forbidden" and _owners(str(err["loc"][-1])):
            raise field_error(path, _foreign_option(str(err["loc"][-1]), method, options_cls)) from None
        raise field_error(path, _describe(err, options_cls, err["loc"])) from None


def _foreign_option(option: str, method: str, options_cls) -> str:
    """A tuning option the chosen method does not take: say which method it belongs to."""
    own = ", ".join(f for f in options_cls.model_fields if f != "method") or "none"
    return (f"not an option of tuning.method={method} (its options: {own}); it is an option of "
            f"tuning.method={' / '.join(_owners(option))}")


def _owners(option: str) -> list[str]:
    return [name for name in METHODS.names() if option in METHODS.get(name).Options.model_fields]


class Recipe(Section):
    name: str = "run"
    task: str = "classification"
    base: BaseSpec = Field(default_factory=BaseSpec)
    data: DataSpec
    lexicon: LexiconSpec = Field(default_factory=LexiconSpec)
    # Each method validates its own options (a LoRA option on a full recipe is an error).
    tuning: SerializeAsAny[TuningOptions] = Field(default_factory=lambda: _tuning_options("full"))
    train: TrainSpec = Field(default_factory=TrainSpec)
    decision: DecisionSpec = Field(default_factory=DecisionSpec)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    export: ExportSpec = Field(default_factory=ExportSpec)
    distill: DistillSpec = Field(default_factory=DistillSpec)
    adapt: AdaptSpec = Field(default_factory=AdaptSpec)

    @field_validator("tuning", mode="before")
    @classmethod
    def _method_options(cls, value: Any) -> TuningOptions:
        return _tuning_options(value)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        # The default run directory is runs/<name>: a path in the name would put it elsewhere.
        if not _PLAIN_NAME.fullmatch(value) or value in (".", ".."):
            raise ValueError("not a plain name: use letters, digits, '-', '_' and '.' (no "
                             "path separators, not '.' or '..'); it names the run directory runs/<name> "
                             "(default: the recipe file's name); to write elsewhere set output.dir")
        return value

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(f"{value!r} is not a task; choose one of: {', '.join(TASKS.names())}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        """Checks across sections: the early-stopping metric, then the task's own checks, then the
        fields and formats tasks declare (tasks/base.py), then the method against the task."""
        task = TASKS.get(self.task)
        es = self.train.early_stopping
        if es.metric is None:
            es.metric = task.default_metric
        if es.metric not in task.metric_names:
            raise field_error("train.early_stopping.metric",
                              f"{es.metric!r} is not a metric this task reports; choose one of: "
                              f"{', '.join(task.metric_names)}")
        task.check_recipe(self)
        self._format_fits_task(task)
        self._fields_fit_task(task)
        self._method_fits_task()
        self._run_dir_can_be_a_folder()
        self._distill_fits_task(task)
        self._adapt_fits_task(task)
        return self

    def _adapt_fits_task(self, task) -> None:
        if not self.adapt.enabled:
            return
        if task.name == "generation":
            raise field_error("adapt", "masked-language-model adaptation applies to encoder tasks, not "
                                       "generation; remove the adapt section")
        for path in self.adapt.corpus:
            if not Path(path).is_file():
                raise field_error("adapt.corpus", f"{path} does not exist (give text files, one text a line)")

    def _distill_fits_task(self, task) -> None:
        d = self.distill
        if d.teacher_set and d.teacher_base is None:
            raise field_error("distill.teacher_set", "overrides the teacher that teacher_base trains: set "
                                                     "distill.teacher_base, or remove teacher_set")
        if not d.enabled:
            if d.transfer:
                raise field_error("distill.transfer", "transfer texts are labelled by a teacher: set distill.teacher "
                                                      "to a finished run directory (or distill.teacher_base)")
            return
        if task.name not in DISTILL_TASKS:
            raise field_error("distill.teacher", f"distillation applies to task: {', '.join(DISTILL_TASKS)}, "
                                                 f"not {task.name}; remove the distill section")
        if d.teacher_base is not None:
            if d.teacher is not None:
                raise field_error("distill.teacher_base", "give the teacher as a finished run (teacher) or as a "
                                                          "base to train first (teacher_base), not both")
            self._teacher_recipe_is_valid()
        elif not (Path(d.teacher) / "model").is_dir() and not (Path(d.teacher) / "domainft.json").is_file():
            raise field_error("distill.teacher", f"{d.teacher} is not a finished run directory (no model/ in "
                                                 "it); train the teacher first with `domainft run TEACHER_RECIPE`")
        for path in d.transfer:
            if not Path(path).is_file():
                raise field_error("distill.transfer", f"{path} does not exist (give text files, one text a line)")

    def _teacher_recipe_is_valid(self) -> None:
        for item in self.distill.teacher_set:
            key = item.split("=", 1)[0].strip()
            if "=" not in item or key.split(".")[0] in ("distill", "output", "export", "base"):
                raise field_error("distill.teacher_set", f"{item!r}: give FIELD=VALUE for the teacher's training "
                                  "(base is distill.teacher_base; distill, output and export are not the "
                                  "teacher's to set)")
        try:
            self.teacher_recipe()
        except RecipeError as e:
            raise field_error("distill.teacher_set",
                              "the teacher's recipe is not valid: " + "; ".join(e.problems)) from None

    def _run_dir_can_be_a_folder(self) -> None:
        """The run directory, or a folder above it, must not be an existing file (checked here, so that
        the run stops before anything is written)."""
        for path in (self.run_dir, *self.run_dir.parents):
            try:
                is_file = path.exists() and not path.is_dir()
            except OSError:  # unreadable: creating the directory will say so
                is_file = False
            if is_file:
                what = "is a file" if path == self.run_dir else f"is inside {path}, which is a file"
                given = "" if self.output.dir is not None else " (the default, runs/<name>)"
                raise field_error("output.dir", f"{self.run_dir}{given} {what}; a run directory is a folder: "
                                                "set output.dir to another path, or move the file away")

    def _format_fits_task(self, task) -> None:
        fmt = self.data.format
        if fmt != "auto" and task.data_formats and fmt not in task.data_formats:
            readers = [name for name, t in TASKS.items() if fmt in t.data_formats]
            where = f"; {fmt} applies to task: {' / '.join(readers)}" if readers else ""
            raise field_error("data.format", f"{fmt!r} is not a format for task {task.name}; choose one of: "
                                             f"{', '.join(task.data_formats)} (or auto){where}")

    def _fields_fit_task(self, task) -> None:
        """A field that some tasks declare (Task.fields) and this one does not must keep its default."""
        owners: dict[str, list[str]] = {}
        for name, other in TASKS.items():
            for path in other.fields:
                owners.setdefault(path, []).append(name)
        for path in sorted(owners):
            if path not in task.fields and _is_set(self, path):
                names = owners[path]
                which = f"task: {names[0]}" if len(names) == 1 else f"tasks {' / '.join(names)}"
                raise field_error(path, f"applies to {which} only")

    def _method_fits_task(self) -> None:
        method = METHODS.get(self.tuning.method)
        if method.tasks is not None and self.task not in method.tasks:
            fits = [m for m in METHODS.names() if METHODS.get(m).tasks is None or self.task in METHODS.get(m).tasks]
            raise field_error("tuning.method", f"{self.tuning.method} applies to task: "
                              f"{' / '.join(method.tasks)} only ({method.summary}); for task "
                              f"{self.task} choose one of: {', '.join(fits)}")

    # ----- construction -----
    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Mapping[str, Any] | list[str] | None = None) -> Recipe:
        path = Path(path)
        if path.is_dir():
            raise RecipeError([f"{path} is a directory; a recipe is a YAML file (e.g. "
                               "recipes/finance_sentiment.yaml)"], str(path))
        if not path.is_file():
            raise RecipeError([f"file not found: {path} ({where_to_look(path)})"], str(path))
        try:
            raw = yaml.load(_recipe_text(path), Loader=RecipeLoader) or {}
        except DuplicateKeyError as e:
            raise RecipeError([str(e)], str(path)) from None
        except yaml.YAMLError as e:
            raise RecipeError([f"not valid YAML{_yaml_problem(e)}"], str(path)) from None
        if not isinstance(raw, dict):
            raise RecipeError(["the top level must be a mapping of sections"], str(path))
        # The file's stem names the run unless the recipe does (characters a plain name cannot hold
        # become '_': `my recipe.yaml` runs as my_recipe).
        raw.setdefault("name", re.sub(r"[^\w.-]", "_", path.stem).strip(".") or "run")
        return cls.from_dict(apply_overrides(raw, overrides or {}), source=str(path))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str | None = None) -> Recipe:
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as e:
            raise RecipeError([_format_error(err) for err in e.errors()], source) from None

    def override(self, overrides: Mapping[str, Any] | list[str] | None = None, **kw: Any) -> Recipe:
        """A new recipe with dotted-path overrides: .override({"train.lr": 3e-5}) or ("train.lr=3e-5")."""
        pairs = dict(parse_overrides(overrides) if isinstance(overrides, list) else (overrides or {}))
        pairs.update({k.replace("__", "."): v for k, v in kw.items()})
        return Recipe.from_dict(apply_overrides(self.to_dict(exclude_defaults=True), pairs))

    def to_dict(self, exclude_defaults: bool = False) -> dict:
        data = self.model_dump(mode="json", exclude_unset=exclude_defaults)
        data.setdefault("tuning", {})["method"] = self.tuning.method
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @property
    def run_dir(self) -> Path:
        return self.output.dir if self.output.dir is not None else Path("runs") / self.name

    def teacher_recipe(self) -> Recipe:
        """The recipe of the teacher distill.teacher_base trains: this one with that base and
        distill.teacher_set, without the sections that are the student's (teacher.py places it)."""
        d = self.distill
        raw = {k: v for k, v in self.to_dict(exclude_defaults=True).items() if k not in NOT_THE_TEACHERS}
        raw["name"] = f"{self.name}-teacher"
        raw = apply_overrides(raw, {"base": d.teacher_base, **parse_overrides(list(d.teacher_set))})
        return Recipe.from_dict(raw, source="distill.teacher_base + distill.teacher_set")


# The student's own sections: the teacher that distill.teacher_base trains is fully fine-tuned, not
# distilled, not exported, and placed in the cache (teacher.py).
NOT_THE_TEACHERS = ("distill", "export", "output", "tuning")


def _is_set(recipe: BaseModel, dotted: str) -> bool:
    """Whether the field at `dotted` ("data.split.group_column", "decision") differs from its default."""
    *parents, last = dotted.split(".")
    section = recipe
    for name in parents:
        section = getattr(section, name)
    field = type(section).model_fields[last]
    return getattr(section, last) != field.get_default(call_default_factory=True)


_PLAIN_NAME = re.compile(r"[\w.-]+")  # \w: letters (any script), digits, '_'


# ----- reading YAML -----
class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one mapping; YAML itself would keep the last silently."""


class RecipeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key written twice in one mapping (`train:` twice: PyYAML drops
    the first without a word), naming the key's path and both lines."""

    def construct_document(self, node):
        _check_duplicate_keys(node, (), set())
        return super().construct_document(node)


def _check_duplicate_keys(node, path: tuple[str, ...], seen_nodes: set[int]) -> None:
    if id(node) in seen_nodes:  # an alias to a node already checked (or to an ancestor)
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: overriding merged keys is its purpose
                _check_duplicate_keys(value, path, seen_nodes)
                continue
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is not None:
                line = key.start_mark.line + 1
                if (key.tag, name) in lines:
                    where = ".".join((*path, str(name)))
                    raise DuplicateKeyError(f"{where}: written twice, on lines {lines[key.tag, name]} and {line}; "
                                            "YAML would keep only the second: merge them into one")
                lines[key.tag, name] = line
            _check_duplicate_keys(value, (*path, str(name)), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicate_keys(item, (*path, str(i)), seen_nodes)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """' at line 2, column 1: found character ...' (PyYAML's own text names '<unicode string>')."""
    if not isinstance(e, yaml.MarkedYAMLError):
        return f": {e}"
    mark = e.problem_mark or e.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    what = "; ".join(x for x in (e.problem, e.context) if x) or type(e).__name__
    hint = "; indent with spaces, not tabs" if "'\\t'" in (e.problem or "") else ""
    return f"{where}: {what}{hint}"


def _recipe_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RecipeError([f"cannot read {path}: {e.strerror or e}"], str(path)) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise RecipeError([f"line {line}: bytes {raw[e.start:e.end]!r} are not valid UTF-8; a recipe is "
                           "UTF-8 text: save it as UTF-8"], str(path)) from None


# ----- overrides -----
def parse_overrides(items: list[str]) -> dict[str, Any]:
    """['train.lr=3e-5', 'tuning.method=lora'] -> {'train.lr': 3e-05, 'tuning.method': 'lora'}."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError([f"--set {item!r}: expected FIELD.PATH=VALUE, e.g. train.lr=3e-5"])
        if not value.strip():
            raise RecipeError([f"--set {item}: empty value; to reset a field to its default remove the "
                               "--set, or write null explicitly"])
        if lone_surrogate(item) is not None:  # command-line bytes that were not UTF-8
            raise RecipeError([f"--set {shown(item)}: not valid UTF-8 text; pass UTF-8 (check the terminal's "
                               "or the script's encoding)"])
        out[key.strip()] = _override_value(value)
    return out


def _override_value(value: str) -> Any:
    """The value parsed as YAML (3e-5, [a, b], true, null); text that is not valid YAML (a
    text_template such as '{Chief_complain}. {Sex}, age {Age}') is meant literally."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def apply_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any] | list[str]) -> dict:
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    result = _deep_copy(raw)
    for dotted, value in overrides.items():
        node, keys = result, dotted.split(".")
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None or isinstance(child, (str, list)) and key in ("base", "tuning"):
                child = _expand_shorthand(key, child)
                node[key] = child
            if not isinstance(child, dict):
                raise RecipeError([f"--set {dotted}: {'.'.join(keys[:i + 1])} is a value, not a section"])
            node = child
        node[keys[-1]] = value
    return result


def _expand_shorthand(key: str, value: Any) -> dict:
    if value is None:
        return {}
    return {"name": value} if key == "base" else {"method": value}


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


# ----- error messages -----
# Names Hugging Face users type from habit, mapped to the recipe's own.
HF_NAMES = {"learning_rate": "lr", "num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size",
            "per_device_eval_batch_size": "eval_batch_size", "gradient_accumulation_steps": "grad_accum",
            "lr_scheduler_type": "scheduler", "model_name_or_path": "name", "lora_alpha": "alpha",
            "lora_dropout": "dropout", "max_seq_length": "max_length", "output_dir": "dir"}

def _format_error(err: dict) -> str:
    if err["type"] == "domainft":
        return f"{err['ctx']['path']}: {err['ctx']['message']}"
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    loc = [p for p in loc if p not in ("literal['epoch']", "int", "str", "dict[str,float]")]
    path = ".".join(loc) or "(top level)"
    return f"{path}: {_describe(err, Recipe, err['loc'])}"


def _describe(err: dict, model: type[BaseModel], loc: tuple) -> str:
    kind, given = err["type"], err.get("input")
    if kind == "extra_forbidden":
        siblings = _fields_at(model, loc[:-1])
        close = [HF_NAMES[str(loc[-1])]] if HF_NAMES.get(str(loc[-1])) in siblings else \
            difflib.get_close_matches(str(loc[-1]), siblings, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(siblings)}"
        return f"unknown field; {hint}"
    if kind == "missing":
        return "required field is missing"
    message = err["msg"].removeprefix("Value error, ")
    if given is not None and not isinstance(given, (dict, list)):
        message += f" (got {given!r})"
    return message


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (sub)section at `loc`, for 'did you mean' hints."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)
