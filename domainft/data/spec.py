"""The recipe's `data:` section: where examples come from and how they read (a leaf: the data
readers, the tasks and the recipe import it; it imports none of them)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import Field, field_validator, model_validator

from domainft.cells import template_fields
from domainft.schema import Section, cell_text, field_error


def texts_mapping(value: Any) -> Any:
    """A YAML mapping with its keys and values as cell text (`{1: female}` -> `{'1': 'female'}`)."""
    if isinstance(value, Mapping):
        return {cell_text(k): cell_text(v) for k, v in value.items()}
    return value


class SplitSpec(Section):
    validation: float = Field(0.1, gt=0, lt=1)
    test: float = Field(0.1, ge=0, lt=1)
    seed: int = 13
    stratify: bool = True
    group_column: str | None = Field(None, description="keep the rows sharing this column's value "
                                     "(a contract, a patient) in one split; fractions count groups")

    @model_validator(mode="after")
    def _fractions(self) -> SplitSpec:
        if self.validation + self.test >= 1:
            raise ValueError("validation + test must leave some data for training (sum < 1)")
        return self


class FlagSpec(Section):
    """A word added after a number in a range (bounds inclusive): `{max: 89, text: hypoxia}`."""

    min: float | None = None
    max: float | None = None
    text: str = Field(min_length=1)

    @model_validator(mode="after")
    def _bounded(self) -> FlagSpec:
        if self.min is None and self.max is None:
            raise ValueError("a flag needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class ColumnSpec(Section):
    """How one column's cells read into the text template (`data.columns.<name>`)."""

    number: bool = Field(False, description="a number; a decimal comma ('36,5') reads as 36.5")
    values: dict[str, str] | None = Field(None, description="code -> text ('1': female); an "
                                          "unlisted code is an error naming file and line")
    unit: str | None = Field(None, description="appended to a present value: '36.5 °C'")
    missing: str = Field("unknown", description="the text of a missing cell (data.missing_values)")
    flags: list[FlagSpec] = Field(default_factory=list, description="numbers only: words added when "
                                  "the value is in a range, e.g. HR 130 /min (tachycardia): spells out "
                                  "what a clinician reads from the number, which a text model learns poorly")

    @field_validator("values", mode="before")
    @classmethod
    def _codes_as_text(cls, value: Any) -> Any:
        return texts_mapping(value)  # YAML reads `1: female` with an int key

    @model_validator(mode="after")
    def _one_kind(self) -> ColumnSpec:
        if self.number and self.values is not None:
            raise ValueError("give `number` or `values`, not both")
        if self.flags and not self.number:
            raise ValueError("`flags` apply to numbers: set `number: true`")
        return self


class WideSpec(Section):
    """`format: wide_lists`: one row per document, one column per category holding a list of
    excerpts (CUAD's master_clauses.csv); every other column must be excluded or be the group."""

    exclude: list[str] = Field(default_factory=list, description="columns that are not categories "
                               "(ids, metadata, categories left out on purpose)")
    skip_suffix: str | None = Field("-Answer", description="columns ending so are not categories "
                                    "(CUAD's `<Category>-Answer` summaries)")
    multi_category: Literal["drop", "first", "keep"] | None = Field(
        None, description="an excerpt listed under several categories of one row: drop it, keep it "
        "under the category whose column comes first, or (task: multilabel) keep it as one example "
        "with all its categories; counted either way. Unset: drop (classification), keep (multilabel)")


class HubSplits(Section):
    """The Hub dataset's split names for domainft's three splits."""

    train: str = "train"
    validation: str | None = Field("validation", description="null: carved from train (data.split.validation)")
    test: str | None = Field("test", description="null: no test split")


class HubSpec(Section):
    """`data.hub`: a dataset on the Hugging Face Hub (datasets.load_dataset), instead of files."""

    id: str = Field(min_length=1, description="the dataset id, e.g. 'takala/financial_phrasebank'")
    config: str | None = Field(None, description="the dataset's configuration (subset) name, if it has several")
    revision: str | None = Field(None, description="a branch, tag or commit: pin it for runs that repeat")
    splits: HubSplits = Field(default_factory=HubSplits)


class DataSpec(Section):
    format: Literal["auto", "csv", "tsv", "jsonl", "phrasebank", "conll", "token_table", "wide_lists", "parquet",
                    "hf_dataset"] = "auto"
    path: Path | None = Field(None, description="one file, split by `split`; for ner also a corpus "
                                                "directory with train/devel/test files")
    hub: HubSpec | None = Field(None, description="a Hugging Face Hub dataset by id and split names "
                                "(instead of path / train): read as format hf_dataset")
    train: Path | None = None
    validation: Path | None = None
    test: Path | None = None
    split: SplitSpec = Field(default_factory=SplitSpec)
    wide: WideSpec = Field(default_factory=WideSpec, description="format wide_lists: which columns "
                           "are categories, and what an excerpt under several of them becomes")
    text_column: str = "text"
    text_template: str | None = Field(None, description="build text from columns: '{title}: {body}'")
    text_pair_column: str | None = Field(None, description="a second text, tokenized as a pair with the "
                                         "first (segment ids; a hypothesis and a contract, a question and a "
                                         "passage); with long_inputs: windows, the windows slide over it")
    text_pair_template: str | None = Field(None, description="the second text built from columns, as "
                                           "text_template builds the first")
    long_inputs: Literal["truncate", "windows"] = Field(
        "truncate", description="classification: a text longer than max_length is truncated, or read in "
        "windows of max_length tokens sharing `stride` tokens, its prediction pooled over them (the mean "
        "of the logits; multilabel: the max), the same in predict and the exported bundle")
    label_column: str = "label"
    label_delimiter: str | None = Field(None, description="multilabel: a label cell holds several labels "
                                        "separated by this ('|', ','); items stripped, an empty cell is "
                                        "the empty label set")
    label_columns: list[str] = Field(default_factory=list, description="multilabel: one 0/1 column per "
                                     "label (Kaggle-style); the column names are the labels")
    target_columns: list[str] = Field(default_factory=list, description="regression: the columns (JSON "
                                      "keys) of several numeric targets, predicted together; default: "
                                      "the one target in data.label_column")
    standardize_targets: bool = Field(True, description="regression: the model learns (y - mean) / std of "
                                      "the training targets (stored with the model); predictions and "
                                      "metrics are in the data's own units either way")
    labels: list[str] | None = Field(None, description="fixed label order; other labels are errors")
    label_names: dict[str, str] | None = Field(
        None, description="raw label value -> the name shown everywhere ({0: negative, 1: neutral}): in "
        "metrics, the model's id2label, predictions; every value in the data needs a name, and "
        "data.labels (when given) lists names")
    encoding: str | None = Field(None, description="default: utf-8 (latin-1 for phrasebank)")
    delimiter: str | None = Field(None, description="csv/tsv cell separator; default ',' (csv), tab (tsv)")
    missing_values: list[str] = Field(default_factory=list, description="cell contents that mean "
                                      "'missing' ('??', '#NULL!', ''); template columns render them as "
                                      "their `columns.<name>.missing` text")
    columns: dict[str, ColumnSpec] = Field(default_factory=dict, description="per-column cleaning "
                                           "for the text template: number, values, unit, missing")
    leak_columns: list[str] = Field(default_factory=list, description="columns that must never be "
                                    "inputs (the answer, or facts known only later); checked to exist")
    reference_column: str | None = Field(None, description="another rater's labels (e.g. the nurse's), "
                                         "scored beside the model on the same split; never an input")
    ordinal: bool = Field(False, description="data.labels are ordered from most to least severe; "
                          "adds under/over rates (predicted less/more severe than gold)")
    dedup: bool = True
    duplicates: Literal["exact", "normalized"] = Field(
        "exact", description="classification: which texts count as the same for removing duplicates and "
        "checking train/test overlap: exact, or normalized (case, punctuation and spacing ignored)")
    max_length: int = Field(128, ge=8, le=8192, description="tokens; classification truncates longer "
                            "texts, ner splits them into overlapping windows")
    # ner only
    conll_tag_index: int = Field(-1, description="CoNLL column holding the tag (0 = the token)")
    tokens_column: str = Field("tokens", description="JSONL key of the token list (ner)")
    tags_column: str = Field("tags", description="JSONL key of the tag list (ner); format token_table: the "
                             "column of each token's tag")
    spans_column: str | None = Field(None, description="ner, JSONL without tokens: the key of a record's "
                                     "character-offset entity spans beside its text (data.text_column): "
                                     "[[start, end, label], ...] or [{start, end, label}]; default: the first "
                                     "of spans, entities, label")
    sentence_columns: list[str] = Field(default_factory=list, description="ner, format token_table: the "
                                        "columns whose values a sentence's rows share (e.g. [doc_idx, sent_idx])")
    scheme: Literal["iob2", "iob1", "bioes", "bilou"] = Field("iob2", description="tag scheme of the files")
    repair_tags: bool = Field(False, description="turn an I-X that opens an entity into B-X; grow a "
                              "character span that cuts a word to whole words (counted)")
    stride: int = Field(32, ge=0, description="tokens shared by neighbouring windows of a long input (ner "
                        "sentences; classification with long_inputs: windows)")
    # generation only
    prompt_column: str = Field("prompt", description="generation, JSONL: key of the instruction")
    response_column: str = Field("response", description="generation, JSONL: key of the answer to learn")
    messages_column: str | None = Field(None, description="generation, JSONL: key of a chat list of "
                                        "{role, content}; the last assistant message is the response, "
                                        "the turns before it the prompt (instead of prompt/response)")
    system_prompt: str | None = Field(None, description="generation: a system message before every "
                                      "prompt, in training and generation (default: the chat "
                                      "template's own)")

    @field_validator("labels", "missing_values", mode="before")
    @classmethod
    def _as_texts(cls, value: Any) -> Any:
        # `labels: [1, 2, 3]` in YAML gives ints; cells are text.
        return [cell_text(v) for v in value] if isinstance(value, list) else value

    @field_validator("label_names", mode="before")
    @classmethod
    def _names_as_texts(cls, value: Any) -> Any:
        return texts_mapping(value)  # YAML reads `0: negative` with an int key

    @field_validator("label_names")
    @classmethod
    def _distinct_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            if any(not name for name in value.values()):
                raise ValueError("a label name is empty")
            twice = sorted({n for n in value.values() if list(value.values()).count(n) > 1})
            if twice:
                raise ValueError(f"{', '.join(map(repr, twice))} names two label values; give each its own name")
        return value

    @field_validator("label_delimiter")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an empty or blank label delimiter splits nothing; use e.g. '|' or ','")
        return value

    @field_validator("label_columns")
    @classmethod
    def _distinct_columns(cls, value: list[str]) -> list[str]:
        twice = sorted({c for c in value if value.count(c) > 1})
        if twice:
            raise ValueError(f"{', '.join(map(repr, twice))} listed twice")
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_character(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError(f"{value!r}: a delimiter is one character, e.g. ';' or '\\t'")
        return value

    @model_validator(mode="after")
    def _inputs_not_leaks(self) -> DataSpec:
        inputs = self._template_inputs("text", self.text_column, self.text_template)
        if self.text_pair_column is not None and self.text_pair_template is not None:
            raise field_error("data.text_pair_template", "give data.text_pair_column or data.text_pair_template, "
                              "not both")
        if self.text_pair_column is not None or self.text_pair_template is not None:
            inputs += self._template_inputs("text_pair", self.text_pair_column, self.text_pair_template)
        targets = self.target_columns or [self.label_column]
        if len(set(self.target_columns)) != len(self.target_columns):
            raise field_error("data.target_columns", "lists a column twice")
        for name in self.target_columns:
            if name in self.columns:
                raise field_error(f"data.columns.{name}", "is a target column (data.target_columns): column "
                                  "options shape input text; targets are read as numbers")
        if self.label_column in self.columns:
            raise field_error(f"data.columns.{self.label_column}", "is the label column: column options shape "
                              "input text; name label values with data.label_names ({0: negative, ...})")
        if self.label_names is not None and self.labels is not None:
            unnamed = [label for label in self.labels if label not in self.label_names.values()]
            if unnamed:
                raise field_error("data.labels", f"{', '.join(map(repr, unnamed))} is not one of the names in "
                                  "data.label_names; with label_names, data.labels lists names")
        for name in self.label_columns:
            if name in self.columns:
                raise field_error(f"data.columns.{name}", "is a label column (data.label_columns): column "
                                  "options shape input text")
        for field, name in inputs:
            if name in self.leak_columns or name in (self.label_column, self.reference_column) \
                    or name in self.label_columns or name in targets:
                raise field_error(field, f"uses column {name!r}, which is the label, "
                                  "the reference or in data.leak_columns; the model must not see it")
        if self.ordinal and self.labels is None:
            raise field_error("data.ordinal", "needs data.labels, listed from the most to the least "
                                               "severe (e.g. ['1', '2', '3', '4', '5'] for KTAS)")
        return self

    def _template_inputs(self, what: str, column: str | None, template: str | None) -> list[tuple[str, str]]:
        """(recipe field, column) per column the text (or the pair's second text) reads."""
        if template is None:
            return [(f"data.{what}_template", column)] if column is not None else []
        try:
            return [(f"data.{what}_template", name) for name in template_fields(template)]
        except ValueError as e:  # unbalanced braces
            raise field_error(f"data.{what}_template", f"not a valid template ({e}); write columns as "
                                                       "{name} and a literal brace as {{ or }}") from None

    @property
    def has_pairs(self) -> bool:
        return self.text_pair_column is not None or self.text_pair_template is not None

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if self.hub is not None:
            if self.path is not None or self.train is not None or self.validation or self.test:
                raise ValueError("`hub` names the dataset: give it without `path` / `train` / `validation` / `test`")
            if self.format not in ("auto", "hf_dataset"):
                raise ValueError("`hub` datasets read as format hf_dataset: leave data.format unset")
        elif (self.path is None) == (self.train is None):
            raise ValueError("give either `path` (one file to split) or `train` (with optional "
                             "`validation` and `test`), not both and not neither")
        if self.path is not None and (self.validation or self.test):
            raise ValueError("`validation`/`test` files go with `train`, not with `path`")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("`labels` lists a label twice")
        if self.format == "wide_lists" and self.text_template is not None:
            raise ValueError("`text_template` does not apply to format wide_lists: the text is each "
                             "excerpt of a category column")
        if self.format in ("wide_lists", "phrasebank") and self.has_pairs:
            raise field_error("data.text_pair_column", f"format {self.format} has one text per example; "
                              "text pairs need a table or JSONL with two text columns")
        if self.wide != WideSpec() and self.format != "wide_lists":  # defaults are written back
            raise ValueError("`wide` options apply to format: wide_lists only; set data.format")
        return self

