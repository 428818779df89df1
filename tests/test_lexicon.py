"""Lexicons: terms become whole-word single tokens, new rows start at the subword mean, train under
every tuning method (only the new rows, where the method freezes the embeddings), and survive
reload and the export form."""
from pathlib import Path

import numpy as np
import pytest
import torch

from domainft import load, run
from domainft.errors import DataError, RecipeError
from domainft.lexicon import inject, mine_terms, read_lexicon
from domainft.lexicon.terms import Term
from domainft.methods import METHODS
from domainft.recipe import Recipe

import contract

ROOT = Path(__file__).resolve().parent.parent
# Words of the finance sample that the MiniLM tokenizer shreds into 3+ pieces.
TERMS = "Pharma | | a pharmaceutical company\nSaaristo\nPohjola | Pohjolan\nKallio\n"
TEXTS = ["Pohjola Pharma said its operating profit rose .", "Saaristo will cut jobs at Kallio ."]


@pytest.fixture(scope="module")
def fresh(tiny_base):
    from transformers import AutoModel, AutoTokenizer

    def make():
        torch.manual_seed(0)
        return AutoTokenizer.from_pretrained(tiny_base), AutoModel.from_pretrained(tiny_base)
    return make


def lexicon_file(tmp_path, text=TERMS) -> Path:
    f = tmp_path / "lex.txt"
    f.write_text(f"# finance names\n\n{text}", encoding="utf-8")
    return f


def test_lexicon_file_reads_terms_aliases_descriptions_and_comments(tmp_path):
    terms = read_lexicon(lexicon_file(tmp_path, "EBITDA |  | earnings before interest  # gloss\n"
                                                "hyperkalemia | hyperkalaemia, HK\n"))
    assert [(t.text, t.aliases, t.description) for t in terms] == [
        ("EBITDA", [], "earnings before interest"), ("hyperkalemia", ["hyperkalaemia", "HK"], None)]
    assert terms[1].where.endswith("lex.txt line 4")


def test_lexicon_errors_name_file_and_line(tmp_path):
    with pytest.raises(DataError, match=r"lex\.txt line 4: 'operating profit' is not a single word"):
        read_lexicon(lexicon_file(tmp_path, "EBITDA\noperating profit\n"))
    with pytest.raises(DataError, match=r"lexicon.files: .*nope.txt does not exist"):
        read_lexicon(tmp_path / "nope.txt")


def test_terms_become_single_whole_word_tokens_in_the_tokenizers_case(fresh):
    tokenizer, model = fresh()
    before = tokenizer.tokenize("pohjolan")
    injection = inject(tokenizer, model, [Term("Pohjola", ["Pohjolan"]), Term("profit")], "subword_mean",
                       ["Pohjola", "Pohjola", "profit"], ["test"])
    assert injection.added == ["pohjola", "pohjolan"]  # uncased base: added in lower case
    assert injection.already_single == 1  # "profit"
    assert tokenizer.tokenize("POHJOLA Pohjolan profit") == ["pohjola", "pohjolan", "profit"]
    # A term inside a longer word is not a match: the word stays split as before.
    assert tokenizer.tokenize("Pohjolankatu") == tokenizer.tokenize("pohjolankatu") != ["pohjola", "##nkatu"]
    assert "pohjola" not in tokenizer.tokenize("Pohjolankatu") and len(before) > 1
    assert injection.tokens_per_word_before > injection.tokens_per_word_after == 1.0


def test_new_rows_start_at_the_mean_of_the_original_subwords(fresh):
    tokenizer, model = fresh()
    table = model.get_input_embeddings().weight.detach().clone()
    pieces = tokenizer("saaristo", add_special_tokens=False)["input_ids"]
    described = tokenizer("a pharmaceutical company", add_special_tokens=False)["input_ids"]
    term_pieces = tokenizer("pohjola", add_special_tokens=False)["input_ids"]
    injection = inject(tokenizer, model, [Term("Saaristo"), Term("Pharma", description="a pharmaceutical company"),
                                          Term("Pohjola", ["Pohjolan"])], "description", [], ["test"])
    rows = model.get_input_embeddings().weight.detach()
    assert rows.shape[0] == len(tokenizer) == table.shape[0] + 4
    ids = dict(zip(injection.added, injection.new_ids))
    torch.testing.assert_close(rows[ids["saaristo"]], table[pieces].mean(0))  # no description: subwords
    torch.testing.assert_close(rows[ids["pharma"]], table[described].mean(0))  # from its description
    torch.testing.assert_close(rows[ids["pohjolan"]], table[term_pieces].mean(0))  # alias: the term's start
    torch.testing.assert_close(rows[: table.shape[0]], table)  # old rows untouched


def test_terms_mined_from_training_words_respect_thresholds(fresh):
    tokenizer, _ = fresh()
    words = ["Pohjola"] * 5 + ["Saaristo"] * 2 + ["profit"] * 9 + ["2024"] * 9
    mined = mine_terms(words, tokenizer, min_pieces=3, min_count=3, max_terms=10)
    assert [t.text for t in mined] == ["pohjola"]


def test_recipe_lexicon_shorthands():
    r = Recipe.from_dict({"data": {"path": "x"}, "lexicon": "lexicons/finance.txt"})
    assert r.lexicon.files == [Path("lexicons/finance.txt")] and r.lexicon.from_data is None
    r = Recipe.from_dict({"data": {"path": "x"}, "lexicon": {"from_data": True}})
    assert r.lexicon.from_data.min_pieces == 3 and r.lexicon.enabled
    with pytest.raises(RecipeError, match=r"lexicon.init"):
        Recipe.from_dict({"data": {"path": "x"}, "lexicon": {"files": [], "init": "random"}})


def test_shipped_lexicons_parse():
    for name in ("finance", "medical", "legal"):
        assert len(read_lexicon(ROOT / "lexicons" / f"{name}.txt")) >= 200


def test_missing_lexicon_fails_before_anything_is_written(make_recipe, tmp_path):
    recipe = make_recipe({"lexicon": [str(tmp_path / "missing.txt")]})
    with pytest.raises(DataError, match="missing.txt does not exist"):
        run(recipe, progress=False, echo=lambda *a: None)
    assert not recipe.run_dir.exists()


@pytest.mark.parametrize("method", contract.methods_for("classification"))
def test_new_rows_train_under_every_method_and_survive_reload_and_export(make_recipe, tmp_path, tiny_base, method):
    from transformers import AutoModel

    recipe = make_recipe({"tuning.method": method, "train.epochs": 1, "train.lr": 1e-2,
                          "lexicon": [str(lexicon_file(tmp_path))]})
    result = run(recipe, progress=False, echo=lambda *a: None)
    lex = result.metrics["lexicon"]
    assert lex["terms_added"] == 5 and lex["tokens_per_word"]["after"] < lex["tokens_per_word"]["before"]

    reloaded = load(result.run_dir)
    assert reloaded.tokenizer.tokenize("Pohjola Pharma") == ["pohjola", "pharma"]
    ids = reloaded.tokenizer.convert_tokens_to_ids(["pohjola", "pharma", "saaristo", "kallio", "pohjolan"])
    original = AutoModel.from_pretrained(tiny_base).get_input_embeddings().weight.detach()
    plain = METHODS.get(method)(result.recipe.tuning).to_plain(reloaded.model).eval()
    table = plain.get_input_embeddings().weight.detach()
    trained_rows = table[ids]
    # The rows moved away from their start (the subword mean) during training...
    starts = torch.stack([original[_pieces(tiny_base, t)].mean(0) for t in ("pohjola", "pharma", "saaristo", "kallio")])
    assert not torch.allclose(trained_rows[:4], starts, atol=1e-4)
    # ...while the methods that freeze the embeddings left every old row as pretrained.
    if method != "full":
        torch.testing.assert_close(table[: original.shape[0]], original)

    np.testing.assert_allclose(reloaded.logits(TEXTS), result.model.logits(TEXTS), atol=1e-6)
    batch = reloaded.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        np.testing.assert_allclose(plain(**batch).logits.numpy(), result.model.logits(TEXTS), atol=1e-5)


def _pieces(tiny_base, term: str) -> list[int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)(term, add_special_tokens=False)["input_ids"]
