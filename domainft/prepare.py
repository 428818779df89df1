"""The first step of a run: recipe -> everything the Trainer needs.

Data read and checked, the base resolved, the task model built on it (a fresh head), the lexicon
injected into tokenizer and embeddings, the splits encoded, and the tuning method applied. Nothing
is written. `domainft export` reuses read_data and encode_splits to rebuild the validation set
exactly as training encoded it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from domainft.bases import ResolvedBase, resolve_base
from domainft.data.hub import with_hub_splits
from domainft.lexicon import Injection, inject_lexicon, train_new_rows
from domainft.methods import ModelContext, TuningMethod, count_parameters, get_method
from domainft.model import build_model
from domainft.recipe import Recipe
from domainft.tasks import Task, get_task


@dataclass
class Prepared:
    """A run ready to train: what prepare() built, in the order it built it."""

    recipe: Recipe
    task: Task
    method: TuningMethod
    data: Any  # the task's data bundle: train / validation / test, labels, report
    base: ResolvedBase
    model: Any  # prepared by the method (may be a PEFT wrapper)
    tokenizer: Any
    ctx: ModelContext
    injection: Injection | None
    encoded: dict  # split name -> datasets.Dataset (splits that have examples)
    truncated: dict  # split name -> examples longer than data.max_length
    eval_hook: Callable | None
    trainable: int
    total: int
    distill: dict | None = None  # metrics.json's `distill` section, when the recipe distils from a teacher
    adapt: dict | None = None  # metrics.json's `adapt` section, when the base was adapted first (adapt.py)


def prepare(recipe: Recipe, echo=print) -> Prepared:
    task = get_task(recipe.task)
    method = get_method(recipe.tuning.method)(recipe.tuning)
    data = read_data(task, recipe)
    base = resolve_base(recipe.base.name, recipe.base.revision)
    echo(f"base: {base.describe()}")
    echo_data(data.report, echo)
    adapted = None
    if recipe.adapt.enabled:  # domain-adaptive pretraining first (cached): the adapted encoder is the base
        from domainft.adapt import adapted_base

        base, adapted = adapted_base(recipe, base, task, data, echo)

    from transformers import set_seed

    set_seed(recipe.train.seed)  # before the head is initialised
    eval_hook = task.eval_hook(recipe, data)  # may refuse the recipe's early-stopping metric
    model, tokenizer, ctx = build_model(task, base, data.labels, recipe.base.revision,
                                        recipe.base.trust_remote_code, method.load_kwargs())
    if ctx.new_modules:
        echo(f"new modules (random init, always trained): {', '.join(ctx.new_modules)}")
    injection = inject_lexicon(recipe.lexicon, task.words(data.train), tokenizer, model)
    if injection is not None:
        ctx.new_token_ids = injection.new_ids
        echo_lexicon(injection, echo)
    encoded, truncated = encode_splits(task, data.splits(), tokenizer, data.labels, recipe)
    if any(truncated.values()):
        echo(f"longer than {recipe.data.max_length} tokens, {task.long_inputs(recipe.data)}: " +
             ", ".join(f"{k} {v}" for k, v in truncated.items()))

    model = train_new_rows(method.prepare(model, ctx), ctx.new_token_ids)
    trainable, total = count_parameters(model)
    echo(f"tuning: {method.name}, {trainable:,} trainable of {total:,} parameters "
         f"({100 * trainable / total:.2f}%)")
    return Prepared(recipe, task, method, data, base, model, tokenizer, ctx, injection, encoded, truncated,
                    eval_hook, trainable, total, adapt=adapted)


def read_data(task: Task, recipe: Recipe):
    """The recipe's data, read, checked and split by the task's reader (a data.hub dataset is
    downloaded first and read as its saved splits)."""
    return task.load_data(with_hub_splits(recipe.data))


def encode_splits(task: Task, splits: dict, tokenizer, labels: list[str], recipe: Recipe) -> tuple[dict, dict]:
    """({split: encoded dataset}, {split: examples longer than data.max_length}) for the splits
    that have examples."""
    label2id = {label: i for i, label in enumerate(labels)}
    encoded = {name: task.encode(exs, tokenizer, label2id, recipe.data) for name, exs in splits.items() if exs}
    truncated = {name: task.count_truncated(exs, tokenizer, recipe.data, encoded[name])
                 for name, exs in splits.items() if exs}
    return encoded, truncated


def echo_lexicon(injection: Injection, echo) -> None:
    r = injection.report()
    tpw = r["tokens_per_word"]
    echo(f"lexicon: {r['terms_added']} terms added as tokens ({r['already_single_tokens']} already single "
         f"tokens); train tokens per word {tpw['before']} -> {tpw['after']}")


def echo_data(report: dict, echo) -> None:
    c = report["counts"]
    line = f"data: train {c['train']}, validation {c['validation']}, test {c['test']}"
    if "conflicting_rows_removed" in report:
        kind = "near-duplicates" if report.get("duplicates") == "normalized" else "exact duplicates"
        line += (f"; removed {report['duplicates_removed']} {kind} and "
                 f"{report['conflicting_rows_removed']} rows of {report['conflicting_texts_removed']} "
                 "texts with conflicting labels")
    elif "conflicting_texts_averaged" in report:  # regression: differing targets of one text are averaged
        kind = "near-duplicates" if report.get("duplicates") == "normalized" else "exact duplicates"
        line += (f"; removed {report['duplicates_removed']} {kind}; averaged the targets of "
                 f"{report['conflicting_texts_averaged']} texts given different ones "
                 f"({report['conflicting_rows_averaged']} rows)")
    elif "duplicates_removed" in report:  # generation: pairs have no label to conflict on
        line += f"; removed {report['duplicates_removed']} exact duplicate pairs"
    if report.get("targets_missing"):
        line += f"; left out {report['targets_missing']} rows whose target is missing (data.missing_values)"
    if report.get("overlap_train_test"):
        line += f"; warning: {report['overlap_train_test']} test texts also occur in train"
    echo(line)
