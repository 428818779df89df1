"""NER: readers, tag schemes, subword alignment, windows, spans with offsets, error messages, and a
trained model that reloads to identical predictions."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from domainft import load, run
from domainft.data.ner import Sentence, SpanKeys, prepare_sentences, read_conll, read_ner_jsonl, to_iob2
from domainft.decode import spans
from domainft.errors import DataError, RecipeError
from domainft.model import TrainedModel
from domainft.recipe import DataSpec, Recipe
from domainft.tasks.ner import NerTask, encode_words
from domainft.wordwindows import best_window, merge_windows, plan_windows

from cards import card, index_scores, report_files, run_snippet, snippets

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "data" / "medical_ner"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


# --- readers ----------------------------------------------------------------------------------

def test_conll_reader_skips_docstart_and_reads_tab_or_space_columns(tmp_path):
    f = write(tmp_path / "train.txt", "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                                      "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n")
    sentences = read_conll(f)
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert sentences[1].where(1) == f"{f} line 7"
    assert read_conll(f, tag_index=2)[1].tags == ["B-NP", "I-NP"]  # a chosen tag column

    tabbed = write(tmp_path / "t.tsv", "Famial\tB-Disease\nadenomatous\tI-Disease\n\nThe\tO\n")
    assert [s.tags for s in read_conll(tabbed)] == [["B-Disease", "I-Disease"], ["O"]]


def test_conll_wrong_column_count_names_file_and_line(tmp_path):
    f = write(tmp_path / "train.tsv", "The\tO\nBRCA1\tB-Disease\textra\n")
    with pytest.raises(DataError, match=r"train\.tsv line 2: 3 columns.*first token line has 2"):
        read_conll(f)


def test_conll_missing_tag_names_file_and_line(tmp_path):
    f = write(tmp_path / "train.tsv", "The\tO\n\ncancer\n")
    with pytest.raises(DataError, match=r"train\.tsv line 3: expected a token and a tag"):
        read_conll(f)


def test_jsonl_reader_and_its_errors(tmp_path):
    f = write(tmp_path / "train.jsonl", '{"tokens": ["Ataxia", "telangiectasia"], "ner_tags": ["B-D", "I-D"]}\n'
                                        '\n{"tokens": ["ok"], "ner_tags": ["O"]}\n')
    sentences = read_ner_jsonl(f, "tokens", "ner_tags")
    assert [s.words for s in sentences] == [["Ataxia", "telangiectasia"], ["ok"]]
    assert sentences[1].where(0) == f"{f} line 3 (token 1)"

    with pytest.raises(DataError, match=r"line 1: no 'tags' key.*data.tokens_column / data.tags_column"):
        read_ner_jsonl(f, "tokens", "tags")
    bad = write(tmp_path / "bad.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl line 1: .*same length \(got 2 and 1\)"):
        read_ner_jsonl(bad, "tokens", "tags")
    ids = write(tmp_path / "ids.jsonl", '{"tokens": ["a"], "tags": [3]}\n')
    with pytest.raises(DataError, match=r"ids\.jsonl line 1: tags must be strings"):
        read_ner_jsonl(ids, "tokens", "tags")


# --- schemes ----------------------------------------------------------------------------------


def as_span_records(sentences: list[Sentence], form: str) -> str:
    """The sentences as annotation tools export them: words joined by single spaces, each entity a
    character span (forms: doccano classic, doccano, Prodigy / spaCy)."""
    lines = []
    for s in sentences:
        starts, pos = [], 0
        for w in s.words:
            starts.append(pos)
            pos += len(w) + 1
        spans = [(starts[i], starts[j] + len(s.words[j]), s.tags[i][2:]) for i, j in _entities(s.tags)]
        text = " ".join(s.words)
        if form == "label":
            lines.append({"text": text, "label": [list(x) for x in spans]})
        elif form == "entities":
            lines.append({"text": text, "entities": [{"start_offset": a, "end_offset": b, "label": t}
                                                     for a, b, t in spans]})
        else:
            lines.append({"text": text, "spans": [{"start": a, "end": b, "label": t} for a, b, t in spans]})
    return "".join(json.dumps(x) + "\n" for x in lines)


def _entities(tags: list[str]) -> list[tuple[int, int]]:
    out = []
    for i, t in enumerate(tags):
        if t.startswith("B-"):
            j = i
            while j + 1 < len(tags) and tags[j + 1] == f"I-{t[2:]}":
                j += 1
            out.append((i, j))
    return out


@pytest.mark.parametrize("form", ["label", "entities", "spans"])
def test_character_spans_read_as_the_same_sentences_as_their_conll(tmp_path, form):
    conll = prepare_sentences(DataSpec(path=str(SAMPLE_DIR), format="conll"))
    for name, split in (("train", conll.train), ("devel", conll.validation), ("test", conll.test)):
        write(tmp_path / f"{name}.jsonl", as_span_records(split, form))
    spans = prepare_sentences(DataSpec(path=str(tmp_path)))
    assert spans.labels == conll.labels and spans.report["counts"] == conll.report["counts"]
    for a, b in zip(conll.train + conll.validation + conll.test, spans.train + spans.validation + spans.test):
        assert (a.words, a.tags) == (b.words, b.tags)
    assert spans.report["spans_expanded"] == 0


def test_span_records_split_text_as_prediction_does_and_their_errors(tmp_path):
    f = write(tmp_path / "a.jsonl", json.dumps({"text": "Two had ataxia-telangiectasia. ",
                                                "spans": [[7, 29, "Disease"]]}) + "\n")  # from the space before
    (s,) = read_ner_jsonl(f, "tokens", "tags")
    assert s.words == ["Two", "had", "ataxia", "-", "telangiectasia", "."]
    assert s.tags == ["O", "O", "B-Disease", "I-Disease", "I-Disease", "O"]

    def fails(record, message, **spans):
        bad = write(tmp_path / "bad.jsonl", json.dumps(record) + "\n")
        with pytest.raises(DataError, match=message):
            read_ner_jsonl(bad, "tokens", "tags", spans=SpanKeys(**spans))

    text = "BRCA1 and cancer"
    fails({"text": text, "spans": [[0, 4, "Gene"]]}, r"bad\.jsonl line 1 \(span 1\): 'BRCA' \(0-4\) cuts the "
          r"word\(s\) 'BRCA1'.*data\.repair_tags: true")
    fails({"text": text, "spans": [[0, 5, "Gene"], [0, 9, "Gene"]]}, r"\(span 2\): 'BRCA1 and' overlaps another span")
    fails({"text": text, "spans": [[10, 99, "Disease"]]}, r"offsets 10-99 are not inside the text \(0-16\)")
    fails({"text": text, "spans": [{"begin": 0, "end": 5}]}, r"\(span 1\): expected \[start, end, label\]")
    fails({"text": text, "spans": [[5, 6, "X"]]}, r"\(span 1\): the span holds only spaces")
    fails({"text": text, "ents": [[0, 5, "Gene"]]}, r"no 'tokens' key .*or give a text and its entity spans")
    fails({"body": text, "ents": [[0, 5, "Gene"]]}, r"no 'tokens' key", text="text", spans="ents")

    grown = write(tmp_path / "g.jsonl", json.dumps({"text": text, "ents": [[0, 4, "Gene"]]}) + "\n")
    keys = SpanKeys("text", "ents", repair=True)
    (s,) = read_ner_jsonl(grown, "tokens", "tags", spans=keys)
    assert s.tags == ["B-Gene", "O", "O"] and keys.expanded == 1


def sentence(tags: str) -> Sentence:
    tags_ = tags.split()
    return Sentence([f"w{i}" for i in range(len(tags_))], tags_, "f.tsv", 10)


@pytest.mark.parametrize("scheme,tags,expected", [
    ("iob2", "B-X I-X O B-Y", "B-X I-X O B-Y"),
    ("iob1", "I-X I-X O I-Y B-Y I-X", "B-X I-X O B-Y B-Y B-X"),
    ("bioes", "B-X I-X E-X O S-Y S-Y", "B-X I-X I-X O B-Y B-Y"),
    ("bilou", "B-X L-X U-Y O B-X I-X L-X", "B-X I-X B-Y O B-X I-X I-X"),
])
def test_schemes_convert_to_iob2(scheme, tags, expected):
    assert to_iob2(sentence(tags), scheme, repair=False) == (expected.split(), 0)


def test_i_after_o_is_an_error_with_line_and_fixes():
    with pytest.raises(DataError, match=r"f\.tsv line 11: 'I-X' follows 'O'.*data.scheme: iob1.*data.repair_tags"):
        to_iob2(sentence("O I-X"), "iob2", repair=False)
    with pytest.raises(DataError, match=r"f\.tsv line 11: 'I-Y' follows 'B-X'"):
        to_iob2(sentence("B-X I-Y"), "iob2", repair=False)
    assert to_iob2(sentence("O I-X I-X O I-Y"), "iob2", repair=True) == ("O B-X I-X O B-Y".split(), 2)


def test_bioes_tags_under_iob2_and_malformed_tags_are_errors():
    with pytest.raises(DataError, match=r"line 11: tag 'E-X' belongs to BIOES.*set data.scheme"):
        to_iob2(sentence("B-X E-X"), "iob2", repair=False)
    with pytest.raises(DataError, match=r"line 10: tag 'Disease' is not O or PREFIX-TYPE"):
        to_iob2(sentence("Disease"), "iob2", repair=False)


def test_repairs_are_counted_in_the_report_and_labels_come_from_data(tmp_path):
    write(tmp_path / "train.tsv", "a\tI-Chem\nb\tO\n\nc\tB-Dis\nd\tI-Dis\n")
    write(tmp_path / "devel.tsv", "a\tB-Chem\n")
    write(tmp_path / "test.tsv", "a\tO\n")
    spec = DataSpec(path=str(tmp_path), format="conll", repair_tags=True)
    bundle = prepare_sentences(spec)
    assert bundle.report["tags_repaired"] == 1
    assert bundle.labels == ["O", "B-Chem", "I-Chem", "B-Dis", "I-Dis"]  # O first; I- for every B-
    assert bundle.report["counts"] == {"train": 2, "validation": 1, "test": 1}
    assert bundle.report["train_entity_counts"] == {"Chem": 1, "Dis": 1}


def test_a_test_tag_never_seen_in_training_is_an_error(tmp_path):
    write(tmp_path / "train.tsv", "a\tB-Dis\n")
    write(tmp_path / "devel.tsv", "a\tO\n")
    write(tmp_path / "test.tsv", "a\tO\nb\tB-Gene\n")
    with pytest.raises(DataError, match=r"test\.tsv line 2: tag 'B-Gene' never occurs in the training data"):
        prepare_sentences(DataSpec(path=str(tmp_path), format="conll"))


def test_missing_validation_file_is_carved_from_train(tmp_path):
    write(tmp_path / "train.tsv", "".join(f"w{i}\tO\n\n" for i in range(20)))
    bundle = prepare_sentences(DataSpec(path=str(tmp_path), format="conll"))
    # No devel and no test file: both are carved from train, seeded.
    assert len(bundle.train) + len(bundle.validation) + len(bundle.test) == 20
    assert bundle.validation and bundle.test
    assert bundle.report["split"] == "validation and test carved from train (seed 13)"


# --- alignment and windows --------------------------------------------------------------------

def test_only_the_first_subword_of_a_word_carries_its_position(tokenizer):
    words = ["Neurofibromatosis", "type", "1"]
    [(ids, index)] = encode_words(words, tokenizer, max_length=64, stride=16)
    pieces = [tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
    assert len(pieces[0]) > 1  # the test needs a word split into several subwords
    assert ids == tokenizer.build_inputs_with_special_tokens(sum(pieces, []))
    assert index[0] == -1 and index[-1] == -1  # [CLS], [SEP]
    expected = [-1] + [0] + [-1] * (len(pieces[0]) - 1) + [1] + [2] + [-1]
    assert index == expected


def test_encoded_labels_sit_on_first_subwords_only(tokenizer):
    spec = DataSpec(path="unused", max_length=64, stride=16)
    s = Sentence(["Neurofibromatosis", "type", "1", "patients"], ["B-D", "I-D", "I-D", "O"], "f", 1)
    encoded = NerTask().encode([s], tokenizer, {"O": 0, "B-D": 1, "I-D": 2}, spec)
    labels = encoded["labels"][0]
    assert [x for x in labels if x != -100] == [1, 2, 2, 0]
    assert labels[0] == -100 and labels[2] == -100  # [CLS] and the 2nd subword of word 0


@pytest.mark.parametrize("lengths,budget,stride", [
    ([1] * 50, 10, 3), ([2, 3, 1, 4, 2, 2, 5, 1, 1, 3] * 4, 8, 3), ([1, 12, 1, 1], 6, 2), ([3] * 5, 30, 8),
])
def test_windows_cover_every_word_within_budget_and_overlap(lengths, budget, stride):
    windows = plan_windows(lengths, budget, stride)
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    for (a, b), (c, d) in zip(windows, windows[1:]):
        assert a < c <= b  # consecutive windows advance, leaving no gap
    for a, b in windows:
        assert sum(lengths[a:b]) <= budget or b - a == 1
    best = best_window(windows)
    for i, w in enumerate(best):
        a, b = windows[w]
        assert a <= i < b


def test_long_sentence_is_windowed_and_each_word_comes_from_its_best_window(tokenizer):
    words = [f"word{i}" for i in range(40)]  # "word12" -> several subwords each
    encoded = encode_words(words, tokenizer, max_length=24, stride=8)
    assert len(encoded) > 2
    assert all(len(ids) <= 24 for ids, _ in encoded)
    covered = {i for _, index in encoded for i in index if i >= 0}
    assert covered == set(range(40))
    # Logits that say which window produced them; the merge must take the most central window.
    rows = len(encoded)
    width = max(len(ids) for ids, _ in encoded)
    logits = np.zeros((rows, width, rows), dtype=np.float32)
    for r in range(rows):
        logits[r, :, r] = 1.0
    [merged] = merge_windows(logits, [0] * rows, [index for _, index in encoded])
    spans_ = [(min(i for i in index if i >= 0), max(index) + 1) for _, index in encoded]
    assert list(merged.argmax(-1)) == best_window(spans_)


def test_spans_from_tags():
    assert spans(["B-D", "I-D", "O", "B-C", "B-C", "I-C", "I-D", "O"]) == \
        [("D", 0, 2), ("C", 3, 4), ("C", 4, 6), ("D", 6, 7)]


# --- prediction with character offsets --------------------------------------------------------

class KeywordTagger(torch.nn.Module):
    """A stand-in model: tags 'heart' as B-Disease and 'attack' as I-Disease, everything else O."""

    def __init__(self, tokenizer):
        super().__init__()
        self.b = tokenizer.convert_tokens_to_ids("heart")
        self.i = tokenizer.convert_tokens_to_ids("attack")
        self.device = torch.device("cpu")

    def forward(self, input_ids, attention_mask):
        logits = torch.zeros(*input_ids.shape, 3)
        logits[..., 0] = 1.0
        logits[..., 1] += 5.0 * (input_ids == self.b)
        logits[..., 2] += 5.0 * (input_ids == self.i)
        return type("Out", (), {"logits": logits})()


def test_predict_returns_entities_with_character_offsets_across_windows(tokenizer):
    manifest = {"labels": ["O", "B-Disease", "I-Disease"], "max_length": 12, "stride": 4}
    trained = TrainedModel(KeywordTagger(tokenizer), tokenizer, NerTask(), manifest)
    text = ("Mr. Lee (aged 61) had a heart attack in 2019; his brother's heart  attack came later, "
            "and no further heart-attack was seen.")
    [out] = trained.predict([text])
    assert len(out["words"]) == len(out["tags"]) > 12  # longer than one window, nothing dropped
    found = [(e["type"], e["text"], e["start"]) for e in out["entities"]]
    assert found == [("Disease", "heart attack", text.index("heart attack")),
                     ("Disease", "heart  attack", text.index("heart  attack")),
                     ("Disease", "heart", text.index("heart-attack")),
                     ("Disease", "attack", text.index("heart-attack") + 6)]  # '-' is its own word: O
    for e in out["entities"]:
        assert text[e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1

    [pre_split] = trained.predict([["a", "heart", "attack", "."]])
    assert pre_split["entities"] == [{"type": "Disease", "start": 2, "end": 14, "text": "heart attack",
                                      "score": pytest.approx(pre_split["entities"][0]["score"])}]


# --- recipes and the pipeline -----------------------------------------------------------------

def test_medical_ner_recipe_validates_and_defaults_to_entity_f1():
    recipe = Recipe.from_yaml(ROOT / "recipes" / "medical_ner.yaml")
    assert recipe.task == "ner" and recipe.train.early_stopping.metric == "f1"
    no_metric = Recipe.from_dict({"task": "ner", "data": {"path": str(SAMPLE_DIR)}})
    assert no_metric.train.early_stopping.metric == "f1"


def test_classification_metric_and_oversized_stride_are_recipe_errors():
    with pytest.raises(RecipeError, match=r"train.early_stopping.metric.*'macro_f1'.*f1, precision"):
        Recipe.from_dict({"task": "ner", "data": {"path": "x"}, "train": {"early_stopping": {"metric": "macro_f1"}}})
    with pytest.raises(RecipeError, match=r"data: `stride` \(40\) must be at most half of `max_length` \(64\)"):
        Recipe.from_dict({"task": "ner", "data": {"path": "x", "max_length": 64, "stride": 40}})


@pytest.fixture
def ner_recipe(tiny_base, tmp_path):
    def make(**overrides):
        raw = {"name": "ner_test", "task": "ner", "base": str(tiny_base),
               "data": {"format": "conll", "path": str(SAMPLE_DIR), "max_length": 32, "stride": 8},
               "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "seed": 3},
               "output": {"dir": str(tmp_path / "run")}}
        return Recipe.from_dict(raw).override(overrides)
    return make


@pytest.mark.parametrize("method", ["full", "lora"])
def test_ner_run_scores_entities_and_reloads_to_identical_predictions(ner_recipe, method):
    result = run(ner_recipe(**{"tuning.method": method}), progress=False, echo=lambda *a: None)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for split in ("validation", "test"):
        m = metrics[split]
        assert {"f1", "precision", "recall", "per_class", "entities"} <= set(m)
        assert set(m["per_class"]) == {"Disease"} and m["entities"] > 0
    assert metrics["data"]["labels"] == ["O", "B-Disease", "I-Disease"]
    # The score logged during training for the restored checkpoint is the one reported after it.
    best = metrics["train"]["best_metric"]
    assert metrics["validation"]["f1"] == pytest.approx(best)

    texts = ["Patients with cystic fibrosis and breast cancer were enrolled .",
             "No history of ataxia - telangiectasia in the family ."]
    before = result.model.predict(texts)
    reloaded = load(result.run_dir)
    assert reloaded.predict(texts) == before
    np.testing.assert_allclose(reloaded.logits(texts), result.model.logits(texts), atol=1e-6)

    assert report_files(result.run_dir) == ["learning_curves.png", "per_entity.png"]
    data, _ = card(result.model_dir / "README.md")
    assert data["pipeline_tag"] == "token-classification"
    assert data["library_name"] == {"full": "transformers", "lora": "peft"}[method]
    assert index_scores(data)["Entity F1 (seqeval, strict IOB2) (test)"] == pytest.approx(metrics["test"]["f1"],
                                                                                          abs=1e-4)
    found = run_snippet(snippets(result.model_dir / "README.md")[-1], result.model_dir)["entities"]
    assert len(found) == 1 and all(e["entity_group"] == "Disease" for e in found[0])


def test_label_smoothing_skips_ignored_tokens():
    logits = torch.randn(2, 4, 3)
    labels = torch.tensor([[0, 2, -100, -100], [1, -100, 0, 2]])
    loss = NerTask().loss_function(None, smoothing=0.1)({"logits": logits}, labels)
    kept = labels.reshape(-1) != -100
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 3)[kept], labels.reshape(-1)[kept],
                                                 label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)
    assert NerTask().loss_function(None) is None  # the model's own loss when neither is set
