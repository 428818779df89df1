"""Generation: a decoder base learns to answer instructions in its chat format.

Loss on the response tokens only (domainft/chat.py); evaluation reports loss and perplexity, and
when responses are short labels also exact match and token F1 of greedy generations.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from domainft.chat import decode, encode_pair, generate_ids, prompt_ids, split_row, with_system_prompt
from domainft.data.instructions import Instruction, InstructionBundle, prepare_instructions
from domainft.errors import DomainftError
from domainft.schema import changed, field_error
from domainft.tasks.base import Task, register_task
from domainft.textmatch import exact_match, token_f1

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

# Recipe fields that only generation reads (tasks/base.py, Task.fields).
FIELDS = frozenset({"data.prompt_column", "data.response_column", "data.messages_column", "data.system_prompt",
                    "generation"})
# Encoder-task fields a generation recipe may set from habit, and what to use instead.
HINTS = {"text_column": "name the instruction with data.prompt_column",
         "label_column": "name the answer with data.response_column"}

SCORED = ("exact_match", "token_f1")
EXTRA_NEW_TOKENS = 4  # scoring: room beyond the longest reference, to see an answer run on
SAMPLES = 3  # validation answers shown in metrics.json and the run summary


@register_task("generation")
class GenerationTask(Task):
    metric_names = ("loss", "exact_match", "token_f1")
    default_metric = "loss"
    peft_task_type = "CAUSAL_LM"
    long_input_note = "cut at data.max_length (the end of the response is lost)"
    summary_columns = [("loss", "loss"), ("perplexity", "perplexity"), ("exact match", "exact_match"),
                       ("token F1", "token_f1")]
    eval_on_start = True
    loss_only_eval = True
    data_formats = ("jsonl",)
    fields = FIELDS

    def check_recipe(self, recipe) -> None:
        """Encoder-task settings on a generation recipe are mistakes: say what to use instead."""
        d = recipe.data
        if d.format not in ("auto", "jsonl"):
            raise field_error("data.format", f"task: generation reads jsonl (one JSON object per line), "
                                             f"not {d.format}")
        for name in changed(d, ("text_column", "label_column", "text_template", "labels", "columns",
                                "leak_columns", "reference_column", "missing_values")):
            hint = HINTS.get(name, "it applies to tasks classification / ner")
            raise field_error(f"data.{name}", f"not used by task: generation; {hint}")
        if recipe.lexicon.enabled:
            raise field_error("lexicon", "not supported with task: generation (classification and ner only)")
        if recipe.export.enabled:
            raise field_error("export.enabled", "the ONNX bundle applies to classification / ner; for "
                              "generation, `domainft merge RUN_DIR` writes the model with the adapter "
                              "merged into a full-precision copy of the base")
        es = recipe.train.early_stopping
        if es.metric in SCORED and recipe.generation.score_responses == "never":
            raise field_error("train.early_stopping.metric", f"{es.metric} needs scored generations; "
                              "set generation.score_responses to auto or always, or use loss")

    def greater_is_better(self, metric: str) -> bool:
        return metric in SCORED

    @property
    def model_class(self):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def model_kwargs(self, labels: list[str]) -> dict:
        return {}  # the language-model head is the base's own

    def check_base(self, base, tokenizer):
        from transformers import AutoConfig

        architectures = AutoConfig.from_pretrained(base.path).architectures or []
        if not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
            raise DomainftError(f"base {base.describe()}: task: generation needs a decoder (causal LM) "
                                f"base, this one is {', '.join(architectures) or 'of unknown architecture'}; "
                                "use e.g. base: smollm2")
        if not tokenizer.chat_template:
            raise DomainftError(f"base {base.describe()}: its tokenizer has no chat template, so prompts "
                                "cannot be formatted as the model expects; use an instruct/chat base "
                                "(e.g. smollm2)")
        if tokenizer.pad_token is None:  # batches need one; padding is masked by the collator
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def load_data(self, spec: DataSpec) -> InstructionBundle:
        return prepare_instructions(spec)

    def words(self, pairs: list[Instruction]) -> list[str]:
        return [w for p in pairs for _, text in p.messages for w in text.split()] + \
            [w for p in pairs for w in p.response.split()]

    def encode(self, pairs: list[Instruction], tokenizer, label2id, spec: DataSpec):
        from datasets import Dataset

        columns: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": [], "truncated": []}
        for p in pairs:
            ids, labels, cut = encode_pair(tokenizer, p.chat(spec.system_prompt), p.response,
                                           spec.max_length, p.where)
            columns["input_ids"].append(ids)
            columns["attention_mask"].append([1] * len(ids))
            columns["labels"].append(labels)
            columns["truncated"].append(cut)
        return Dataset.from_dict(columns)

    def count_truncated(self, pairs, tokenizer, spec: DataSpec, encoded) -> int:
        return sum(encoded["truncated"])

    def collator(self, tokenizer):
        from transformers import DataCollatorForSeq2Seq

        # Pads labels with -100 (never by token id: the pad token may be the end-of-turn token).
        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True)

    def class_weights(self, train, labels, setting):
        return None  # refused by the recipe (train.class_weights applies to classification / ner)

    def loss_function(self, weights, smoothing: float = 0.0):
        return None  # the model's own shifted cross-entropy over the unmasked labels

    def metrics_for(self, dataset, labels: list[str]):
        return None  # loss from the Trainer; the rest from eval_hook

    def model_loss(self):
        return response_loss

    def eval_hook(self, recipe, data: InstructionBundle):
        scored = scores_generations(recipe, data)
        batch_size = recipe.train.eval_batch_size

        def hook(model, tokenizer, dataset, metrics: dict, prefix: str) -> dict:
            extra = {}
            if f"{prefix}_loss" in metrics:
                extra[f"{prefix}_perplexity"] = math.exp(min(metrics[f"{prefix}_loss"], 50.0))
            if scored:
                scores = score_dataset(model, tokenizer, dataset, batch_size)
                extra.update({f"{prefix}_{k}": v for k, v in scores.items()})
            return extra

        return hook

    def report(self, predictions, label_ids, labels, dataset) -> dict:
        # Loss, perplexity and the scores come from the evaluation loop (the pipeline adds them).
        return {"n": len(dataset), "response_tokens": int(sum(np.sum(np.asarray(r) != -100)
                                                              for r in dataset["labels"]))}

    def examples(self, trained, data: InstructionBundle, recipe) -> dict:
        """Greedy answers to the first validation prompts beside the references, to read."""
        pairs = data.validation[:SAMPLES]
        answers = self.generate(trained, [p.chat() for p in pairs]) if pairs else []
        return {"samples": [{"prompt": p.messages[-1][1], "reference": p.response, "generated": a}
                            for p, a in zip(pairs, answers)]}

    def manifest_extras(self, recipe) -> dict:
        return {"generation": {"max_new_tokens": recipe.generation.max_new_tokens,
                               "system_prompt": recipe.data.system_prompt}}

    # --- prediction ----------------------------------------------------------------------

    def generate(self, trained, prompts, max_new_tokens: int | None = None, batch_size: int = 8,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None) -> list[str]:
        """One response per prompt (a string, or a chat list of {role, content} ending with a user
        turn), formatted with the base's chat template and the run's system prompt."""
        if isinstance(prompts, str) or (prompts and isinstance(prompts[0], dict)):
            prompts = [prompts]
        settings = trained.manifest.get("generation", {})
        system = settings.get("system_prompt")
        chats = [as_chat(p, system) for p in prompts]
        ids = generate_ids(trained.model, trained.tokenizer, [prompt_ids(trained.tokenizer, c) for c in chats],
                           max_new_tokens or settings.get("max_new_tokens", 128), batch_size,
                           do_sample, temperature, top_p, seed)
        return [decode(trained.tokenizer, row) for row in ids]

    def predict(self, trained, texts, batch_size: int = 8) -> list[dict]:
        return [{"response": r} for r in self.generate(trained, texts, batch_size=batch_size)]


def as_chat(prompt, system_prompt: str | None) -> list[dict]:
    if isinstance(prompt, str):
        turns = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in prompt):
        turns = [dict(m) for m in prompt]
    else:
        raise DomainftError("generate: a prompt is a string or a list of {\"role\", \"content\"} messages")
    return with_system_prompt(turns, system_prompt)


def response_loss(model, inputs, num_items_in_batch=None):
    """Cross-entropy on the response tokens, the LM head applied at those positions only.

    Equal to the model's own loss, but the [batch, length, vocabulary] logits never exist: with a
    49k vocabulary they are most of a small decoder's activation memory, and the prompt's share of
    them (most of each sequence) was computed for nothing. Heads that scale or cap their logits
    (Gemma 2, Cohere) take the model's own path.
    """
    import torch

    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = inputs["labels"]
    if not _plain_head(lm):
        return model(**inputs).loss
    hidden = lm.base_model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                           use_cache=False).last_hidden_state
    targets = labels[:, 1:]  # position t predicts token t + 1
    keep = targets != -100
    logits = lm.get_output_embeddings()(hidden[:, :-1][keep]).float()
    loss = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="sum")
    # Over the tokens of all accumulated micro-batches when the Trainer counts them (as transformers' own loss).
    count = num_items_in_batch if num_items_in_batch is not None else keep.sum()
    return loss / torch.as_tensor(count, device=loss.device).clamp(min=1)


def _plain_head(lm) -> bool:
    config = lm.config
    return (getattr(config, "final_logit_softcapping", None) is None and getattr(config, "logit_scale", None) is None
            and getattr(lm, "base_model", lm) is not lm)


def scores_generations(recipe, data: InstructionBundle) -> bool:
    """Whether evaluation generates and scores answers (generation.score_responses); checked
    against early stopping's metric before training starts."""
    g = recipe.generation
    longest = max((len(p.response.split()) for p in data.validation), default=0)
    scored = g.score_responses == "always" or (g.score_responses == "auto" and longest <= g.short_response_words)
    metric = recipe.train.early_stopping.metric
    if metric in SCORED and not scored:
        raise DomainftError(f"train.early_stopping.metric: {metric} scores generated answers, but the "
                            f"validation responses are not short labels (the longest has {longest} words, "
                            f"generation.short_response_words is {g.short_response_words}); use loss, or "
                            "set generation.score_responses: always")
    return scored


def score_dataset(model, tokenizer, dataset, batch_size: int) -> dict[str, float]:
    """Exact match and token F1 of greedy answers to the encoded pairs' prompts."""
    rows = [split_row(ids, labels) for ids, labels in zip(dataset["input_ids"], dataset["labels"])]
    longest = max(len(ref) for _, ref in rows)
    generated = generate_ids(model, tokenizer, [p for p, _ in rows], longest + EXTRA_NEW_TOKENS, batch_size)
    pairs = [(decode(tokenizer, g), decode(tokenizer, ref)) for g, (_, ref) in zip(generated, rows)]
    return {"exact_match": float(np.mean([exact_match(g, r) for g, r in pairs])),
            "token_f1": float(np.mean([token_f1(g, r) for g, r in pairs]))}
