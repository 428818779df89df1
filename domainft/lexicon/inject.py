"""Teach a tokenizer and a model the lexicon: whole-word added tokens, new embedding rows that start
where the term's meaning already is (the mean of its original subword embeddings, or of its
description's), and the tokens-per-word effect measured on the training words."""
from __future__ import annotations

from dataclasses import dataclass, field

from domainft.lexicon.terms import Term, normalizer_of


@dataclass
class Injection:
    """What `inject` did; `report()` goes to metrics.json."""

    base_vocab: int  # tokenizer size before injection
    added: list[str] = field(default_factory=list)
    new_ids: list[int] = field(default_factory=list)  # token id of each added term
    already_single: int = 0
    duplicates: int = 0
    sources: list[str] = field(default_factory=list)
    tokens_per_word_before: float | None = None
    tokens_per_word_after: float | None = None

    def report(self) -> dict:
        return {"sources": self.sources, "terms_added": len(self.added), "already_single_tokens":
                self.already_single, "duplicates_skipped": self.duplicates,
                "tokens_per_word": {"before": self.tokens_per_word_before, "after": self.tokens_per_word_after}}


def inject(tokenizer, model, terms: list[Term], init: str, words: list[str], sources: list[str]) -> Injection:
    """Add `terms` (and their aliases) to `tokenizer` as single-word tokens and give `model` a new,
    initialised embedding row for each. `words` (the training words) measure tokens per word."""
    import torch
    from tokenizers import AddedToken

    normalize = normalizer_of(tokenizer)
    embeddings = model.get_input_embeddings().weight
    result = Injection(base_vocab=len(tokenizer), sources=sources)
    result.tokens_per_word_before = tokens_per_word(tokenizer, words)
    seen: set[str] = set()
    plan: list[tuple[str, list[int]]] = []  # (token text, ids whose mean embedding starts its row)
    for term in terms:
        seed_ids = _seed_ids(tokenizer, term, init)
        for text in [term.text, *term.aliases]:
            form = normalize(text)
            if form in seen:
                result.duplicates += 1
                continue
            seen.add(form)
            if len(tokenizer(form, add_special_tokens=False)["input_ids"]) <= 1:
                result.already_single += 1
                continue
            plan.append((form, seed_ids))
    # single_word: matched only as a whole word ("hyperkalemias" stays split); normalized: matched
    # after the tokenizer's own normalisation (lower-casing for uncased models).
    tokenizer.add_tokens([AddedToken(form, single_word=True, normalized=True) for form, _ in plan])
    result.added = [form for form, _ in plan]
    result.new_ids = tokenizer.convert_tokens_to_ids(result.added)
    if plan:
        seeds = torch.stack([embeddings[ids].mean(0) for _, ids in plan]).detach()
        # Never shrink: some bases carry more rows than their tokenizer has tokens.
        model.resize_token_embeddings(max(embeddings.shape[0], max(result.new_ids) + 1), mean_resizing=False)
        with torch.no_grad():
            model.get_input_embeddings().weight[result.new_ids] = seeds
    result.tokens_per_word_after = tokens_per_word(tokenizer, words)
    return result


def _seed_ids(tokenizer, term: Term, init: str) -> list[int]:
    """Original subword ids whose mean embedding starts the term's row."""
    text = term.description if init == "description" and term.description else term.text
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids or [tokenizer.unk_token_id]


def tokens_per_word(tokenizer, words: list[str]) -> float | None:
    """Mean number of subword tokens per word over `words` (each distinct word tokenized once)."""
    from collections import Counter

    if not words:
        return None
    counts = Counter(words)
    distinct = list(counts)
    pieces = tokenizer(distinct, add_special_tokens=False)["input_ids"]
    total = sum(len(p) * counts[w] for w, p in zip(distinct, pieces))
    return round(total / len(words), 4)


def inject_lexicon(spec, words: list[str], tokenizer, model) -> Injection | None:
    """Apply a recipe's `lexicon` section (files, then terms mined from `words`); None if unset."""
    from domainft.lexicon.terms import mine_terms, read_lexicon

    if not spec.enabled:
        return None
    terms = [t for path in spec.files for t in read_lexicon(path)]
    sources = [str(path) for path in spec.files]
    if spec.from_data is not None:
        m = spec.from_data
        terms += mine_terms(words, tokenizer, m.min_pieces, m.min_count, m.max_terms)
        sources.append(f"train data (>= {m.min_pieces} subwords, >= {m.min_count} times, "
                       f"top {m.max_terms})")
    return inject(tokenizer, model, terms, spec.init, words, sources)
