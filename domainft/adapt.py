"""Domain-adaptive pretraining: a second phase of masked-language-model training of the base on
domain text before fine-tuning (Gururangan et al. 2020, "Don't Stop Pretraining": DAPT on domain
corpora, TAPT on the task's own training texts).

    adapt: {task_texts: true, corpus: [../shared/datasets/medical_abstracts/train.txt.gz], epochs: 3}

The adapted base is an ordinary transformers directory (encoder weights, their MLM head, the
tokenizer with the lexicon's terms), cached under $DOMAINFT_CACHE/adapted by a hash of the base, the
texts and the settings, so a sweep over seeds or tuning methods adapts once; `domainft adapt RECIPE`
writes it for any recipe's `base:` to name. A base without an MLM head (the packaged MiniLM is a
sentence encoder) gets transformers' standard one (transform + LayerNorm + a decoder tied to the
word embeddings), newly initialised, optionally trained alone first (head_warmup_steps). The
lexicon's terms are added before adaptation, so their rows are learnt by the MLM stage (and masked
as whole words). Texts that are, normalized, validation or test texts of the run are dropped; a
share of the adaptation texts is held out, and its MLM loss is reported before and after
(perplexity = exp(loss)) and read by early stopping.

Adaptation checkpoints into a hidden sibling of the cache entry (.<name>.partial), so an interrupted
adaptation (Ctrl-C, a killed job) continues from its last complete checkpoint the next time any run
or `domainft adapt` asks for the same base; a lock lets only one process train a given base (the
others wait, then read it from the cache).
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from domainft.atomic import published_once, signals_raise
from domainft.bases import ResolvedBase, base_fingerprint
from domainft.errors import DomainftError
from domainft.gguf import cache_dir
from domainft.locks import exclusive
from domainft.rundir import RunDir, checkpoint_step
from domainft.textfiles import read_texts, unseen

REPORT_FILE = "adapt.json"  # in the adapted base's directory: what adaptation did and measured
HEAD_PREFIXES = ("cls.", "lm_head.", "generator_", "vocab_")  # MLM head parameter names (BERT, RoBERTa, ...)


@dataclass
class AdaptationTexts:
    train: list[str]
    held_out: list[str]
    report: dict


def adaptation_texts(recipe, task, data) -> AdaptationTexts:
    """TAPT's training texts and DAPT's corpus texts, without any validation or test text of the run,
    shuffled (adapt.seed) and split into training and held-out texts."""
    spec = recipe.adapt
    known = [_text_of(x) for split in (data.validation, data.test) for x in split]
    task_texts = [_text_of(x) for x in data.train] if spec.task_texts else []
    corpus = read_texts(spec.corpus, spec.corpus_limit, "adapt.corpus") if spec.corpus else []
    texts, dropped = unseen(task_texts + corpus, known)
    if len(texts) < 20:
        raise DomainftError(f"adapt: {len(texts)} texts to adapt on (after dropping validation / test texts and "
                            "repeats); give adapt.corpus files or set adapt.task_texts with more training data")
    random.Random(spec.seed).shuffle(texts)
    n_held = max(10, round(spec.held_out * len(texts)))
    report = {"task_texts": len(task_texts), "corpus_texts": len(corpus), "corpus": [str(p) for p in spec.corpus],
              "dropped_validation_test_or_repeated": dropped, "train_texts": len(texts) - n_held,
              "held_out_texts": n_held}
    return AdaptationTexts(texts[n_held:], texts[:n_held], report)


def _text_of(item) -> str:
    if hasattr(item, "words"):
        return " ".join(item.words)
    return item.text if not getattr(item, "pair", None) else f"{item.text} {item.pair}"


def adapted_base(recipe, base: ResolvedBase, task, data, echo=print) -> tuple[ResolvedBase, dict]:
    """The base adapted as recipe.adapt says, from the cache or trained now (atomically published),
    and its report (metrics.json's `adapt`)."""
    texts = adaptation_texts(recipe, task, data)
    words = task.words(data.train) if recipe.lexicon.enabled else []
    key = _cache_key(base, recipe, texts)
    out = cache_dir() / "adapted" / f"{Path(base.path).name}-{key[:16]}"
    report = _published_report(out)
    if report is None:
        with _only_one_adapting(out):
            report = _published_report(out)  # another process may have published it while this one waited
            if report is None:
                report = _adapt_into(out, base, recipe, texts, words, echo)
    else:
        echo(f"adapt: cached {out} (held-out perplexity {report['perplexity']['before']:.2f} -> "
             f"{report['perplexity']['after']:.2f})")
    return ResolvedBase(f"{base.requested} (adapted)", str(out), "adapted"), {**report, "dir": str(out)}


def _published_report(out: Path) -> dict | None:
    path = out / REPORT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@contextmanager
def _only_one_adapting(out: Path):
    """Hold the lock of one cache entry: concurrent sweeps train a base once and share its checkpoints
    never. The ranks of one torchrun job take no lock: they train the base together (one Trainer,
    DDP) and would wait on each other for ever."""
    from domainft.distributed import world

    if world().distributed:
        yield
        return
    with exclusive(out):
        yield


def partial_dir(out: Path) -> Path:
    """Where the adaptation of cache entry `out` checkpoints until it is published."""
    return out.with_name(f".{out.name}.partial")


def _adapt_into(out: Path, base: ResolvedBase, recipe, texts: AdaptationTexts, words: list[str], echo) -> dict:
    from domainft.distributed import is_main

    work = RunDir(partial_dir(out))
    if is_main():  # (the ranks of a torchrun job share the directory, as the Trainer's output_dir)
        work.remove_incomplete_checkpoints()  # a kill during a save
    resume = work.last_checkpoint()
    r = texts.report
    echo(f"adapt: masked-LM training of {base.describe()} on {len(texts.train)} texts ({r['task_texts']} "
         f"task, {r['corpus_texts']} corpus), {len(texts.held_out)} held out"
         + (f"; continuing the interrupted adaptation from {Path(resume).name}" if resume else ""))
    with signals_raise(), published_once(out) as tmp:  # SIGTERM / SIGHUP remove tmp as Ctrl-C does
        report = train_mlm(base, recipe, texts, words, tmp, echo, work=work, resume=resume)
    shutil.rmtree(work.path, ignore_errors=True)
    return report


def _cache_key(base: ResolvedBase, recipe, texts: AdaptationTexts) -> str:
    h = hashlib.sha256()
    # The base and the corpus by what they hold, not where: a corpus moved or a venv reached through
    # a link reuses the adapted base; a base folder trained again at the same path does not.
    # precision: auto decides per machine, once (its measurement is cached), so it names the same
    # adaptation on one machine; a precision set by hand is part of what the user asked for.
    settings = recipe.adapt.model_dump(mode="json", exclude={"corpus", "precision"})
    if recipe.adapt.precision != "auto":
        settings["precision"] = recipe.adapt.precision
    h.update(json.dumps({"base": base_fingerprint(base.path), "revision": recipe.base.revision,
                         "adapt": settings,
                         "lexicon": recipe.lexicon.model_dump(mode="json")}, sort_keys=True).encode())
    for text in (*texts.train, "\0", *texts.held_out):
        h.update(text.encode("utf-8", "replace"))
        h.update(b"\n")
    return h.hexdigest()


def train_mlm(base: ResolvedBase, recipe, texts: AdaptationTexts, words: list[str], out: Path, echo,
              work: RunDir, resume: str | None = None) -> dict:
    """MLM-train `base` on the texts, checkpointing into work.checkpoints (continuing from the
    checkpoint `resume`); save it (and adapt.json) into `out`. The report."""
    import math

    from transformers import AutoModelForMaskedLM, AutoTokenizer, Trainer, TrainingArguments, set_seed

    from domainft.callbacks import EarlyStopping, ProgressFile
    from domainft.distributed import has_accelerator
    from domainft.lexicon import inject_lexicon
    from domainft.precision import mixed_precision_arguments

    spec = recipe.adapt
    set_seed(spec.seed)
    started = time.perf_counter()
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    tokenizer = AutoTokenizer.from_pretrained(base.path, revision=recipe.base.revision)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized: cls.predictions...": said below, in our words
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(base.path, revision=recipe.base.revision,
                                                           output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    new_head = sorted({k.split(".")[0] for k in info["missing_keys"] if k.startswith(HEAD_PREFIXES)})
    if new_head:
        echo(f"adapt: {base.requested} has no masked-LM head; a standard one is initialised ({', '.join(new_head)}: "
             "transform, LayerNorm, decoder tied to the word embeddings)")
    injection = inject_lexicon(recipe.lexicon, words, tokenizer, model)  # its rows are learnt by the MLM stage
    if injection is not None:
        echo(f"adapt: lexicon: {injection.report()['terms_added']} terms added as tokens, their rows learnt here")
    train, held = (_tokenized(tokenizer, t, spec.max_length) for t in (texts.train, texts.held_out))
    collator, masking = _collator(tokenizer, spec)
    restore = predict_masked_positions_only(model)
    precision = _precision(spec, model, tokenizer, train)
    echo(f"adapt: precision {precision.used} ({precision.reason})")
    args = TrainingArguments(
        output_dir=str(work.checkpoints), num_train_epochs=spec.epochs, max_steps=spec.max_steps or -1,
        per_device_train_batch_size=spec.batch_size, per_device_eval_batch_size=spec.batch_size,
        learning_rate=spec.lr, warmup_ratio=0.06, weight_decay=0.01, seed=spec.seed, data_seed=spec.seed,
        eval_strategy="steps" if spec.eval_every else "epoch", save_strategy="steps" if spec.eval_every else "epoch",
        eval_steps=spec.eval_every, save_steps=spec.eval_every, save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model="eval_loss", greater_is_better=False, use_cpu=not has_accelerator(),
        report_to=[], disable_tqdm=True, log_level="warning", logging_steps=50, save_safetensors=True,
        **mixed_precision_arguments(precision),
        # the held-out loss only (no logits kept); the collator reads the offsets and special-token
        # masks, then drops them
        prediction_loss_only=True, remove_unused_columns=False,
        restore_callback_states_from_checkpoint=True)  # early stopping's count, on a resume
    progress = ProgressFile(work.path / "progress.json", started, resume is not None)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=held, data_collator=collator,
                      callbacks=[EarlyStopping("loss", False, spec.patience, 0.0), progress])
    trainer.remove_callback(PrinterCallback)  # the report says what matters
    before = trainer.evaluate()["eval_loss"]  # the same initial model on a resume: the head's init is seeded
    if resume:  # the warm-up ran before the first checkpoint; the checkpoint holds its result
        warmup = progress.facts.get("head_warmup")
    else:
        warmup = (_warm_up_head(trainer, new_head, spec.head_warmup_steps)
                  if new_head and spec.head_warmup_steps else None)
        progress.facts["head_warmup"] = warmup
    with tied_keys_not_reported_missing(model):
        trainer.train(resume_from_checkpoint=resume)
    after = trainer.evaluate()["eval_loss"]
    restore()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    report = {"base": base.describe(), "texts": texts.report, "settings": spec.model_dump(mode="json"),
              "masking": masking, "precision": precision.report(), "new_head": new_head, "head_warmup": warmup,
              "lexicon": injection.report() if injection else None,
              "loss": {"before": before, "after": after},
              "perplexity": {"before": math.exp(before), "after": math.exp(after)},
              "steps": trainer.state.global_step, "epochs": trainer.state.epoch,
              "resumed_from_step": checkpoint_step(resume) if resume else None,
              "wall_time_s": round(progress.seconds(), 1)}
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    echo(f"adapt: held-out perplexity {report['perplexity']['before']:.2f} -> {report['perplexity']['after']:.2f} "
         f"in {report['wall_time_s']:.0f} s ({report['steps']} steps)")
    return report


def _precision(spec, model, tokenizer, train):
    """adapt.precision decided as train.precision is: on a CPU with bf16 instructions, `auto` times a
    few masked-LM steps (the masked-positions-only forward, as trained) in fp32 and bf16."""
    from domainft.precision import choose_on_main_rank

    def sample_batch():
        import torch

        # A collator of its own, under a forked RNG (seed 0 masks with the global one): the training
        # masks are those of a machine that measures nothing.
        with torch.random.fork_rng():
            return _collator(tokenizer, spec)[0]([train[i] for i in range(min(16, len(train)))])

    return choose_on_main_rank(spec.precision, model, sample_batch)


def predict_masked_positions_only(model):
    """Make the MLM model's forward apply its head to the masked positions only; the function that puts
    the original forward back.

    A masked-LM model scores every position against the whole vocabulary and then ignores the 85% that
    are not masked; for a small encoder that decoder (hidden x 30k) costs as much as the encoder itself.
    The loss is the same mean cross-entropy over the masked positions. The forward of the model itself
    is replaced (not a wrapper module), so Trainer, DDP and save_pretrained see the same model.
    Architectures whose head is not one module (`cls` for BERT, `lm_head` for RoBERTa / MPNet) keep
    their forward."""
    import types

    import torch.nn.functional as F
    from transformers.modeling_outputs import MaskedLMOutput

    head = next((getattr(model, n) for n in ("cls", "lm_head") if hasattr(model, n)), None)
    encoder = getattr(model, model.base_model_prefix, None)
    if head is None or encoder is None:
        return lambda: None
    original = model.forward

    # No **kwargs, as BertForMaskedLM: Trainer then averages the loss over accumulation steps as before.
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, labels=None):
        extra = {k: v for k, v in (("token_type_ids", token_type_ids), ("position_ids", position_ids)) if v is not None}
        if labels is None:
            return original(input_ids=input_ids, attention_mask=attention_mask, **extra)
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)[0]
        picked = labels != -100
        scores = head(hidden[picked])
        loss = F.cross_entropy(scores.float(), labels[picked]) if picked.any() else scores.sum() * 0.0
        return MaskedLMOutput(loss=loss)

    model.forward = types.MethodType(forward, model)  # a bound method, as accelerate's wrappers expect

    def restore():
        del model.forward  # back to the class's own

    return restore


TRAINER_MISSING_KEYS = "There were missing keys in the checkpoint model loaded: "


@contextmanager
def tied_keys_not_reported_missing(model):
    """Within: Trainer's warning that a checkpoint it reloads (the best one at the end, or the one a
    resume starts from) lacks keys is dropped when every key it names is one of the model's tied
    parameters. The MLM decoder is tied to the word embeddings (and its bias to the head's): safetensors
    stores each shared tensor once, Trainer loads the checkpoint non-strictly into the tied model, and
    the tied tensor is the one loaded, so nothing is missing. Any other missing key still warns."""
    import ast
    import logging

    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    tied = {name for names in groups.values() if len(names) > 1 for name in names}

    def keep(record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not text.startswith(TRAINER_MISSING_KEYS):
            return True
        try:
            keys = ast.literal_eval(text[len(TRAINER_MISSING_KEYS):].rstrip("."))
        except (ValueError, SyntaxError):  # another wording: show it
            return True
        return not set(keys) <= tied

    logger = logging.getLogger("transformers.trainer")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _tokenized(tokenizer, texts: list[str], max_length: int):
    """Unpadded rows; the offsets tell whole-word masking where words begin (fast tokenizers)."""
    from datasets import Dataset

    enc = tokenizer(texts, truncation=True, max_length=max_length, return_special_tokens_mask=True,
                    return_offsets_mapping=tokenizer.is_fast)
    return Dataset.from_dict(dict(enc))


def _collator(tokenizer, spec):
    """Masks whole words where the tokenizer gives offsets (every piece of a word masked together,
    a lexicon term as one word), single tokens otherwise; which one is in the report."""
    from transformers import DataCollatorForLanguageModeling

    whole = spec.whole_word_masking and tokenizer.is_fast
    # Whole-word masking always replaces with [MASK]; passing that explicitly also steps around a
    # transformers 4.57 bug (its warning about it raises TypeError).
    options = {"mask_replace_prob": 1.0, "random_replace_prob": 0.0} if whole else {}
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=spec.mlm_probability,
                                               whole_word_mask=whole, seed=spec.seed, **options)

    def collate(rows: list[dict]):
        if "offset_mapping" in rows[0]:  # the tokenizer pads the other columns, not these
            width = max(len(r["input_ids"]) for r in rows)
            rows = [{**r, "offset_mapping": list(r["offset_mapping"]) + [[0, 0]] * (width - len(r["offset_mapping"]))}
                    for r in rows]
        return collator(rows)

    return collate, "whole words" if whole else "tokens"


def _warm_up_head(trainer, head: list[str], steps: int) -> dict:
    """Train only the new head `steps` steps (the encoder frozen), then unfreeze everything; the held-out
    loss after the warm-up."""
    from transformers import Trainer

    model = trainer.model
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.requires_grad = name.split(".")[0] in head
    import dataclasses

    # replace(), not to_dict(): that masks the hub tokens as placeholder strings, which would be set
    args = dataclasses.replace(trainer.args, max_steps=steps, eval_strategy="no", save_strategy="no",
                               load_best_model_at_end=False)
    warm = Trainer(model=model, args=args, train_dataset=trainer.train_dataset, data_collator=trainer.data_collator)
    from transformers.trainer_callback import PrinterCallback

    warm.remove_callback(PrinterCallback)  # its loss dicts on stdout; the report gives the loss after it
    warm.train()
    for name, p in model.named_parameters():
        p.requires_grad = flags[name]
    return {"steps": steps, "loss_after": trainer.evaluate()["eval_loss"]}
