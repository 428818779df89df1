"""NER from a token-per-row table (token, integer tag, document and sentence ids, as FiNER-ORD
ships it): consecutive rows sharing the sentence columns form a sentence, data.label_names names
the integer tags; missing settings and columns are errors naming them."""
import pytest

from domainft import run
from domainft.data.ner import prepare_sentences
from domainft.errors import DataError, RecipeError
from domainft.recipe import DataSpec, Recipe

TAGS = {0: "O", 1: "B-Disease", 2: "I-Disease"}
SENTENCES = [[("Patients", 0), ("with", 0), ("cystic", 1), ("fibrosis", 2), (".", 0)],
             [("No", 0), ("sign", 0), ("of", 0), ("asthma", 1), (".", 0)],
             [("Breast", 1), ("cancer", 2), ("was", 0), ("treated", 0), (".", 0)]]


def token_table(path, copies=10):
    lines = ["gold_label,gold_token,doc_idx,sent_idx"]
    for doc in range(copies):
        for sent, words in enumerate(SENTENCES):
            lines += [f"{tag},{word},{doc},{sent}" for word, tag in words]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


SETTINGS = {"format": "token_table", "tokens_column": "gold_token", "tags_column": "gold_label",
            "sentence_columns": ["doc_idx", "sent_idx"], "label_names": TAGS}


def test_rows_become_sentences_with_named_tags(tmp_path):
    bundle = prepare_sentences(DataSpec(path=str(token_table(tmp_path / "t.csv")), **SETTINGS))
    every = bundle.train + bundle.validation + bundle.test
    assert len(every) == 30 and bundle.labels == ["O", "B-Disease", "I-Disease"]
    assert any(s.words == ["Patients", "with", "cystic", "fibrosis", "."] and
               s.tags == ["O", "O", "B-Disease", "I-Disease", "O"] for s in every)


def test_a_token_table_trains(tiny_base, tmp_path):
    recipe = Recipe.from_dict({"task": "ner", "base": str(tiny_base), "output": {"dir": str(tmp_path / "run")},
                               "data": {"path": str(token_table(tmp_path / "t.csv")), "max_length": 32,
                                        "stride": 8, **SETTINGS},
                               "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "seed": 3}})
    result = run(recipe, progress=False, echo=lambda *a: None)
    assert result.metrics["data"]["labels"] == ["O", "B-Disease", "I-Disease"] and "f1" in result.metrics["test"]


@pytest.mark.parametrize("change, message", [
    ({"sentence_columns": []}, r"data.sentence_columns: format token_table needs"),
    ({"format": "conll"}, r"data.sentence_columns: format token_table needs .* only it reads them"),
])
def test_token_table_settings_go_together(tmp_path, change, message):
    data = {"path": str(tmp_path / "t.csv"), **SETTINGS, **change}
    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict({"task": "ner", "data": data})


def test_a_missing_column_or_an_unnamed_tag_is_named(tmp_path):
    path = token_table(tmp_path / "t.csv")
    with pytest.raises(DataError, match=r"data.tokens_column: .*t.csv has no column 'token'"):
        prepare_sentences(DataSpec(path=str(path), **{**SETTINGS, "tokens_column": "token"}))
    with pytest.raises(DataError, match=r"data.label_names: .*t.csv line \d+: tag '2' has no name there"):
        prepare_sentences(DataSpec(path=str(path), **{**SETTINGS, "label_names": {0: "O", 1: "B-Disease"}}))
