"""Table rows as model inputs: a model trained on texts built from columns (data.text_template,
data.columns, data.missing_values) reads a new row the way training read its rows, in the trained
model, the torch-free predictor and `domainft predict` alike. Without this a client has to rebuild
the text by hand (codes, units, decimal commas, flags), and any difference is a silent train /
serve skew. Stdlib only (the torch-free predictor imports it).

The model manifest's `text_inputs.records` holds what rendering needs; it is there only when a
template built the training texts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domainft.cells import CellError, ColumnRule, render_text, template_fields
from domainft.errors import DomainftError

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec


def records_manifest(spec: DataSpec) -> dict | None:
    """What a model trained on `spec` needs to render a row, or None when its texts were read whole
    from a column (a row is then just its text)."""
    if spec.text_template is None and spec.text_pair_template is None:
        return None
    return {"text_template": spec.text_template, "text_column": spec.text_column,
            "text_pair_template": spec.text_pair_template, "text_pair_column": spec.text_pair_column,
            "columns": {name: c.model_dump(mode="json") for name, c in spec.columns.items()},
            "missing_values": list(spec.missing_values)}


class Records:
    """Renders rows ({column: value}) into the texts (or text pairs) the model was trained on."""

    def __init__(self, manifest: dict):
        self.m = manifest
        self.rules = {name: ColumnRule.from_dict(d) for name, d in manifest.get("columns", {}).items()}
        self.missing_values = frozenset(manifest.get("missing_values", []))
        self.pairs = manifest.get("text_pair_template") is not None or manifest.get("text_pair_column") is not None
        self.columns = [*dict.fromkeys(self._fields("text") + (self._fields("text_pair") if self.pairs else []))]

    @classmethod
    def of(cls, text_inputs: dict) -> Records | None:
        records = (text_inputs or {}).get("records")
        return cls(records) if records else None

    def is_record(self, item: Any) -> bool:
        """A dict is a row, unless it is the text form ({"text"} / {"text", "text_pair"}) and the
        template needs columns it lacks: an already rendered text is still taken as it is."""
        if not isinstance(item, dict):
            return False
        return not (set(item) <= {"text", "text_pair"} and not set(self.columns) <= set(item))

    def render(self, row: dict, i: int) -> str | tuple[str, str]:
        absent = [c for c in self.columns if c not in row]
        if absent:
            raise DomainftError(f"input {i}: no {', '.join(map(repr, absent))}; this model builds its text from the "
                                f"columns {', '.join(self.columns)} ({self._shown()}): give a row with each of them")
        try:
            text = self._render(row, "text")
            return (text, self._render(row, "text_pair")) if self.pairs else text
        except CellError as e:
            raise DomainftError(f"input {i}: {e}") from None

    def _fields(self, which: str) -> list[str]:
        template = self.m.get(f"{which}_template")
        return template_fields(template) if template is not None else [self.m[f"{which}_column"]]

    def _render(self, row: dict, which: str) -> str:
        return render_text(row, self.m.get(f"{which}_column"), self.m.get(f"{which}_template"), self.rules,
                           self.missing_values)

    def _shown(self) -> str:
        shown = [self.m.get("text_template") or "{" + self.m["text_column"] + "}"]
        if self.pairs:
            shown.append(self.m.get("text_pair_template") or "{" + self.m["text_pair_column"] + "}")
        return " / ".join(shown)
