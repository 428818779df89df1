"""Chat-template encoding and generation for decoder bases (task: generation).

Training sequences are the base's own chat template rendered over prompt + response; the labels
are -100 on every prompt token (system, user turns, the assistant header), so the loss is on the
response and the end-of-turn token that closes it, nothing else. Padding is masked in the labels by
the collator, not by token id: SmolLM2's pad token is its end-of-turn token.
"""
from __future__ import annotations

from domainft.errors import DataError, DomainftError

IGNORE = -100


def with_system_prompt(turns: list[dict], system_prompt: str | None) -> list[dict]:
    """`turns` with `system_prompt` as the first message, unless there is none or they open with their own."""
    if system_prompt is not None and not (turns and turns[0]["role"] == "system"):
        return [{"role": "system", "content": system_prompt}, *turns]
    return turns


def prompt_ids(tokenizer, chat: list[dict]) -> list[int]:
    """The prompt as the model sees it at generation time: template + assistant header."""
    return list(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True))


def encode_pair(tokenizer, chat: list[dict], response: str, max_length: int,
                where: str = "") -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, truncated) for one pair: the prompt masked, the response and its
    end-of-turn token learned; whatever the template puts after that token is dropped."""
    prompt = prompt_ids(tokenizer, chat)
    full = list(tokenizer.apply_chat_template(chat + [{"role": "assistant", "content": response}],
                                              tokenize=True))
    if full[:len(prompt)] != prompt:
        raise DomainftError("the base's chat template does not render a conversation as its prompt "
                            "followed by the response, so the prompt cannot be masked; use a base "
                            "whose template does (e.g. ChatML, as smollm2)")
    reply = full[len(prompt):]
    if tokenizer.eos_token_id in reply:  # end of turn: the model must learn to stop there
        reply = reply[:reply.index(tokenizer.eos_token_id) + 1]
    if len(prompt) >= max_length:
        raise DataError(f"{where}: the prompt alone is {len(prompt)} tokens with the chat template, "
                        f"data.max_length ({max_length}) leaves no room for the response; raise "
                        "data.max_length or shorten the prompt")
    ids = (prompt + reply)[:max_length]
    labels = ([IGNORE] * len(prompt) + reply)[:max_length]
    return ids, labels, len(prompt) + len(reply) > max_length


def split_row(input_ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of an encoded pair: the prompt ends where the labels start."""
    start = next((i for i, label in enumerate(labels) if label != IGNORE), len(labels))
    return list(input_ids[:start]), [t for t in labels[start:] if t != IGNORE]


def generate_ids(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, batch_size: int = 8,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None) -> list[list[int]]:
    """Generated token ids per prompt (without the prompt), stopping at the end-of-turn token.
    Greedy by default; with do_sample, `seed` makes the draw repeatable."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else \
        {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    if seed is not None:
        torch.manual_seed(seed)
    outputs: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        ids, mask = _left_padded(prompts[start:start + batch_size], tokenizer.pad_token_id)
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 max_new_tokens=max_new_tokens, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id, **sampling)
        outputs.extend(_until_eos(row, tokenizer.eos_token_id) for row in out[:, ids.shape[1]:].tolist())
    return outputs


def _left_padded(rows: list[list[int]], pad_id: int):
    """Generation continues at the right end of each row, so prompts are padded on the left."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def _until_eos(ids: list[int], eos: int) -> list[int]:
    return ids[:ids.index(eos)] if eos in ids else ids


def decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True).strip()
