"""Training, saving and restoring the lexicon's embedding rows under any tuning method.

`full` trains the whole embedding matrix, so the rows come along. LoRA trains them through PEFT's
`trainable_token_indices` (saved in the adapter file). Methods that freeze the embeddings (freeze,
adapter, custom ones) get `NewRowsEmbedding`: the pretrained matrix stays frozen, only the new rows
learn (no weight decay creeping into frozen rows, as a gradient mask would allow). After training the
rows are folded back into a plain embedding, so the saved model is a plain transformers model, and
written to `lexicon_rows.safetensors` for methods that save only what they trained.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

ROWS_FILE = "lexicon_rows.safetensors"


class NewRowsEmbedding(nn.Module):
    """An embedding whose rows `ids` come from a trainable table, the rest from a frozen one."""

    def __init__(self, base: nn.Embedding, ids: list[int]):
        super().__init__()
        self.base = base
        self.register_buffer("ids", torch.tensor(ids, dtype=torch.long), persistent=True)
        self.new_rows = nn.Parameter(base.weight.detach()[self.ids].clone())
        slot = torch.full((base.num_embeddings,), -1, dtype=torch.long)
        slot[self.ids] = torch.arange(len(ids))
        self.register_buffer("slot", slot, persistent=False)  # token id -> row in new_rows, or -1

    @property
    def weight(self):  # transformers and peft look at the embedding's weight (shape, dtype, device)
        return self.base.weight

    @property
    def num_embeddings(self) -> int:
        return self.base.num_embeddings

    def forward(self, input_ids):
        out = self.base(input_ids)
        slot = self.slot[input_ids]
        is_new = slot >= 0
        if not bool(is_new.any()):
            return out
        return torch.where(is_new.unsqueeze(-1), self.new_rows[slot.clamp(min=0)].to(out.dtype), out)

    def folded(self) -> nn.Embedding:
        with torch.no_grad():
            self.base.weight[self.ids] = self.new_rows.to(self.base.weight.dtype)
        return self.base


def train_new_rows(model, ids: list[int]):
    """Make the rows `ids` trainable if the tuning method left the input embedding frozen."""
    embedding = model.get_input_embeddings()
    if not ids or any(p.requires_grad for p in embedding.parameters()):
        return model  # full tuning trains the matrix; PEFT's trainable tokens train the rows
    model.set_input_embeddings(NewRowsEmbedding(embedding, ids))
    return model


def fold_new_rows(model):
    """Undo `train_new_rows`, keeping the trained rows: a plain nn.Embedding again."""
    embedding = model.get_input_embeddings()
    if isinstance(embedding, NewRowsEmbedding):
        model.set_input_embeddings(embedding.folded())
    return model


def current_rows(model, ids: list[int]) -> torch.Tensor:
    """The rows `ids` as the model computes them now (through any wrapper: PEFT's, ours)."""
    embedding = model.get_input_embeddings()
    device = next(embedding.parameters()).device
    with torch.no_grad():
        return embedding(torch.tensor(ids, device=device)).detach().float().cpu().contiguous()


def save_new_rows(model, ids: list[int], out_dir: Path) -> None:
    from safetensors.torch import save_file

    save_file({"ids": torch.tensor(ids, dtype=torch.long), "rows": current_rows(model, ids)},
              str(Path(out_dir) / ROWS_FILE))


def load_base(model_class, base_path: str, config, model_dir: Path):
    """The base model for a method that saved only what it trained, with the task `config` and,
    when the run added lexicon tokens, its embedding grown and the trained rows put back."""
    from safetensors.torch import load_file
    from transformers import AutoConfig

    rows_file = Path(model_dir) / ROWS_FILE
    if not rows_file.is_file():
        return model_class.from_pretrained(base_path, config=config, use_safetensors=True)
    grown = config.vocab_size
    config.vocab_size = AutoConfig.from_pretrained(base_path).vocab_size
    model = model_class.from_pretrained(base_path, config=config, use_safetensors=True)
    model.resize_token_embeddings(grown, mean_resizing=False)
    saved = load_file(str(rows_file))
    with torch.no_grad():
        model.get_input_embeddings().weight[saved["ids"]] = saved["rows"].to(model.dtype)
    return model

