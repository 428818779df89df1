"""Building the task model on a base, saving a trained one, and loading it back to predict."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domainft.bases import ResolvedBase, resolve_base
from domainft.decode import pool_rows
from domainft.errors import DomainftError
from domainft.methods import ModelContext, TuningMethod
from domainft.records import Records
from domainft.rundir import MANIFEST, method_from_manifest, model_dir_of, read_manifest, write_manifest
from domainft.serving import BUNDLE_FORMAT
from domainft.tasks import Task, get_task
from domainft.textinputs import as_inputs, tokenize


def build_model(task: Task, base: ResolvedBase, labels: list[str], revision: str | None = None,
                trust_remote_code: bool = False, load_kwargs: dict | None = None):
    """(model, tokenizer, ModelContext): the task's model on the base (a fresh head sized for
    `labels` where the task has one); load_kwargs come from the tuning method (4-bit loading)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # we report new modules ourselves, below
    try:
        tokenizer = AutoTokenizer.from_pretrained(base.path, revision=revision,
                                                  trust_remote_code=trust_remote_code)
        if task.words_as_input and getattr(tokenizer, "add_prefix_space", None) is False:
            # Byte-level BPE (RoBERTa) marks word starts with a space: words fed one by one need it.
            tokenizer = AutoTokenizer.from_pretrained(base.path, revision=revision, add_prefix_space=True,
                                                      trust_remote_code=trust_remote_code)
        tokenizer = task.check_base(base, tokenizer)
        model, info = task.model_class.from_pretrained(
            base.path, revision=revision, trust_remote_code=trust_remote_code, use_safetensors=True,
            output_loading_info=True, **task.model_kwargs(labels), **(load_kwargs or {}),
        )
    except (OSError, ValueError) as e:
        raise DomainftError(f"base {base.describe()}: could not load a model from it: {e}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    new_modules = sorted({k.rsplit(".", 1)[0] for k in info["missing_keys"]})
    # Modules the checkpoint lacked (the head; a pooler on SPLADE-style bases) start random and
    # must always be trained and saved, whatever the tuning method.
    ctx = ModelContext(model.config.model_type, new_modules, task.peft_task_type)
    return model, tokenizer, ctx


def save_model(method: TuningMethod, model, tokenizer, out_dir: Path, manifest: dict) -> None:
    method.save(model, out_dir)
    tokenizer.save_pretrained(out_dir)
    write_manifest(out_dir, manifest)


@dataclass
class TrainedModel:
    """A trained model ready to predict; `load(run_dir)` returns one."""

    model: Any
    tokenizer: Any
    task: Task
    manifest: dict

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    def predict(self, texts: list[str] | str, batch_size: int = 32) -> list[dict]:
        """One dict per text. Classification: {'label', 'score', 'scores'}; regression: {'value'}
        (one target) or {'values': {name: value}}, in the data's units; ner: {'entities':
        [{'type', 'start', 'end', 'text', 'score'}], 'words', 'tags'}."""
        return self.task.predict(self, texts, batch_size)

    def generate(self, prompts, max_new_tokens: int | None = None, batch_size: int = 8,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None) -> list[str]:
        """task: generation: one response per prompt (a string or a chat list of {role, content}),
        greedy unless do_sample (then `seed` repeats the draw)."""
        if not hasattr(self.task, "generate"):
            raise DomainftError(f"generate: this is a {self.task.name} model; use predict()")
        return self.task.generate(self, prompts, max_new_tokens, batch_size, do_sample, temperature, top_p, seed)

    @property
    def input_settings(self) -> dict:
        """How an input reads (text pairs, windows): the model manifest's `text_inputs`, as trained."""
        return {"text_pair": False, "long_inputs": "truncate", "window_pooling": "mean",
                **self.manifest.get("text_inputs", {})}

    @property
    def records(self) -> Records | None:
        """Rows -> texts, for a model trained on texts built from columns (data.text_template)."""
        return Records.of(self.input_settings)

    def inputs(self, texts) -> list:
        """Texts (or text pairs) as logits() takes them; a wrong form is a DomainftError."""
        if isinstance(texts, (str, dict)):
            texts = [texts]
        return as_inputs(list(texts), self.input_settings["text_pair"], self.records)

    def logits(self, texts: list):
        """Raw logits (numpy) for one batch of texts or text pairs, one row per input: a long one
        read in windows (data.long_inputs: windows) has its windows' logits pooled."""
        import torch

        settings, m = self.input_settings, self.manifest
        items = self.inputs(texts)
        firsts, pairs = ([a for a, _ in items], [b for _, b in items]) if settings["text_pair"] else (items, None)
        windows = settings["long_inputs"] == "windows"
        batch = tokenize(self.tokenizer, firsts, pairs, m["max_length"], windows, m.get("stride", 0),
                         padding=True, return_tensors="pt")
        rows_of = batch.pop("overflow_to_sample_mapping", None)
        self.model.eval()
        with torch.inference_mode():
            logits = self.model(**batch.to(self.model.device)).logits.float().cpu().numpy()
        return logits if rows_of is None else pool_rows(logits, rows_of, settings["window_pooling"])


def load(path: str | Path) -> TrainedModel:
    """Load a trained model from a run directory (or its model/ subdirectory)."""
    from transformers import AutoTokenizer

    model_dir = model_dir_of(path)
    manifest = _manifest(model_dir)
    if manifest.get("format") == BUNDLE_FORMAT:  # an exported bundle shares the manifest's file name
        raise DomainftError(f"{model_dir} is an exported ONNX bundle; load it with domainft.serving.load "
                            "(or `domainft predict`), or point at the run directory")
    try:
        task = get_task(manifest["task"])
        method = method_from_manifest(manifest)
        base_path, source = manifest["base"]["path"], manifest["base"]["source"]
    except KeyError as e:  # a registry's "unknown task 'x'", or a key the manifest lacks
        detail = e.args[0] if e.args and " " in str(e.args[0]) else f"no {e} entry"
        raise DomainftError(f"{model_dir / MANIFEST}: {detail}. A plug-in's task or method needs --code "
                            "(or importing its module) first; otherwise the run's model is damaged: "
                            "re-run the recipe or restore the directory") from None
    if source != "hub" and not Path(base_path).is_dir():
        base_path = resolve_base([manifest["base"]["requested"]]).path  # moved machine: resolve again
    from safetensors import SafetensorError

    try:
        model = method.load(model_dir, task.model_class, base_path)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except DomainftError:
        raise
    except (OSError, ValueError, SafetensorError) as e:  # transformers / peft / safetensors: missing or damaged files
        raise _incomplete(model_dir, e) from None
    model.eval()
    return TrainedModel(model, tokenizer, task, manifest)


def _manifest(model_dir: Path) -> dict:
    try:
        manifest = read_manifest(model_dir)
    except (OSError, ValueError) as e:  # unreadable, or not JSON (json's error is a ValueError)
        raise DomainftError(f"{model_dir / MANIFEST}: unreadable ({e}); the run's model is damaged: re-run the "
                            "recipe or restore the directory") from None
    if not isinstance(manifest, dict):
        raise DomainftError(f"{model_dir / MANIFEST}: not a domainft manifest (a JSON object); the run's model "
                            "is damaged: re-run the recipe or restore the directory")
    return manifest


def _incomplete(model_dir: Path, e: Exception) -> DomainftError:
    """Why a saved model did not load, naming the missing file where it can be told."""
    import re

    fix = (f"re-run the recipe (--set output.overwrite=true replaces the run) or restore {model_dir} "
           "from a copy")
    detail = str(e).splitlines()[0] if str(e) else type(e).__name__
    # The library's message names the file it looked for: say so when that file is not there.
    named = [n for n in re.findall(r"[\w.-]+\.(?:safetensors|json)", str(e)) if not (model_dir / n).is_file()]
    if not (model_dir / "config.json").is_file():
        missing = "config.json"
    elif named:
        missing = named[0]
    elif not any(p.suffix == ".safetensors" for p in model_dir.iterdir()):
        missing = "the weights file (*.safetensors)"
    else:
        missing = None
    if missing:
        return DomainftError(f"{model_dir}: the run's model is incomplete: {missing} is missing; {fix}")
    return DomainftError(f"{model_dir}: the run's model could not be loaded, a file is damaged "
                         f"({type(e).__name__}: {detail[:300]}); {fix}")
