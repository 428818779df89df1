"""What the tasks over texts take as one input: a text, or a text pair, and the one tokenization
of it that training, predict and the exported bundle share (torch-free: serving uses it too).

A pair is `(text, text_pair)` or `{"text": ..., "text_pair": ...}`; a model trained on pairs
(data.text_pair_column) takes pairs only, any other model plain texts only. A model whose texts were
built from table columns also takes rows (records.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from domainft.errors import DomainftError

if TYPE_CHECKING:
    from domainft.records import Records

PAIR_KEYS = ("text", "text_pair")


def as_inputs(items: Sequence[Any], pairs: bool, records: Records | None = None) -> list:
    """`items` as the tokenizer takes them: strings, or (text, text_pair) tuples for a pair model;
    for a model trained on texts built from columns (`records`), a row {column: value} is rendered as
    training rendered its rows. Anything else is a DomainftError naming the item and the form expected."""
    out = []
    for i, item in enumerate(items, start=1):
        if records is not None and records.is_record(item):
            item = records.render(item, i)
        elif isinstance(item, dict) and set(item) == {"text"} and not pairs:
            item = item["text"]  # {"text": ...}, as --input JSONL and the server take it
        elif isinstance(item, dict) and not set(item) <= set(PAIR_KEYS):
            raise DomainftError(f"input {i}: an object with keys {', '.join(map(repr, list(item)[:6]))}; this model "
                                f"reads {'text pairs' if pairs else 'texts (strings)'}. Rows {{column: value}} are "
                                "read by a model trained on texts built from columns (data.text_template)")
        pair = _pair(item)
        if pairs and pair is None:
            raise DomainftError(f"input {i}: this model reads text pairs (trained with data.text_pair_*): give "
                                f'{{"text": ..., "text_pair": ...}} or a (text, text_pair) tuple, not {_shown(item)}')
        if not pairs and pair is not None:
            raise DomainftError(f"input {i}: this model reads one text per input, not a pair; give a string")
        if not pairs and not isinstance(item, str):
            raise DomainftError(f"input {i}: expected a text (a string), got {_shown(item)}")
        out.append(pair if pairs else item)
    return out


def _pair(item: Any) -> tuple[str, str] | None:
    if isinstance(item, dict) and set(item) >= {"text_pair"}:
        item = (item.get("text"), item["text_pair"])
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(x, str) for x in item):
        return item[0], item[1]
    if isinstance(item, (tuple, dict)):
        raise DomainftError(f"a text pair is (text, text_pair) or {{\"text\": ..., \"text_pair\": ...}} with two "
                            f"strings; got {_shown(item)}")
    return None


def chars(item) -> int:
    """An input's length in characters (batches of similar length pad least)."""
    return sum(len(x) for x in item) if isinstance(item, tuple) else len(item)


def _shown(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 80 else text[:77] + "..."


def tokenize(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int, windows: bool = False,
             stride: int = 0, **options):
    """Texts (and pairs) with a transformers tokenizer, unpadded: truncated longest-first, or
    (windows) cut into windows of max_length tokens sharing `stride`, over the second text of a
    pair (the first kept whole in each), with `overflow_to_sample_mapping`. The exported bundle's
    tokenizer (serving.Predictor) configures the same truncation, so both cut alike. `options`
    (padding, return_tensors) go to the tokenizer."""
    if not windows:
        return tokenizer(texts, pairs, truncation=True, max_length=max_length, **options)
    if not getattr(tokenizer, "is_fast", False):
        raise DomainftError("data.long_inputs: windows needs a fast (Rust) tokenizer and this base has a slow "
                            "one; set data.long_inputs: truncate")
    try:
        return tokenizer(texts, pairs, truncation="only_second" if pairs is not None else True,
                         max_length=max_length, stride=stride, return_overflowing_tokens=True, **options)
    except Exception as e:  # tokenizers: the first text alone leaves no room for the second
        raise DomainftError(window_error(e, max_length, stride)) from None


def window_error(e: Exception, max_length: int, stride: int) -> str:
    return (f"windows of {max_length} tokens sharing {stride} could not be cut ({str(e).splitlines()[0][:200]}): the "
            "first text of a pair is kept whole in every window, so it must leave room for the second "
            "(and data.stride must be smaller than that room); put the long text in data.text_pair_column, "
            "or raise data.max_length / lower data.stride")
