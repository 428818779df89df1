"""NER corpus folders are found by the split word in their file names, as corpora ship them
(CoNLL-2003's eng.train / eng.testa / eng.testb, WNUT-17's wnut17train.conll ...); an ambiguous or
train-less folder gets a message listing what it holds."""
import pytest

from domainft.data.ner import prepare_sentences, split_files, split_of
from domainft.errors import DataError
from domainft.recipe import DataSpec

SENTENCE = "Patients\tO\nwith\tO\ncystic\tB-Disease\nfibrosis\tI-Disease\n.\tO\n\n"


@pytest.mark.parametrize("name, split", [
    ("train.tsv", "train"), ("devel.tsv", "validation"), ("test.tsv", "test"), ("val.csv", "validation"),
    ("eng.train", "train"), ("eng.testa", "validation"), ("eng.testb", "test"),
    ("wnut17train.conll", "train"), ("emerging.dev.conll", "validation"), ("emerging.test.annotated", "test"),
    ("NCBItrainset_corpus.txt", "train"), ("NCBIdevelopset_corpus.txt", "validation"),
    ("SOURCE.md", None), ("labels.txt", None),
])
def test_split_of_reads_the_split_word_in_a_name(name, split):
    assert split_of(name) == split


def corpus(tmp_path, *names):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in names:
        (folder / name).write_text(SENTENCE * 12, encoding="utf-8")
    (folder / "SOURCE.md").write_text("# where it comes from\n")
    return folder


def test_a_conll2003_folder_reads_as_train_validation_test(tmp_path):
    folder = corpus(tmp_path, "eng.train", "eng.testa", "eng.testb")
    assert {k: v.name for k, v in split_files(folder).items()} == {
        "train": "eng.train", "validation": "eng.testa", "test": "eng.testb"}
    bundle = prepare_sentences(DataSpec(path=str(folder), format="conll"))
    assert bundle.report["files"]["validation"].endswith("eng.testa") and len(bundle.test) == 12


def test_two_files_for_one_split_are_refused_by_name(tmp_path):
    folder = corpus(tmp_path, "train.tsv", "dev.tsv", "devel.tsv")
    with pytest.raises(DataError, match=r"holds several validation files \(dev.tsv, devel.tsv\); name the files "
                                        r"with data.train"):
        split_files(folder)


def test_a_folder_without_a_train_file_lists_what_it_holds(tmp_path):
    folder = corpus(tmp_path, "part1.conll", "part2.conll")
    with pytest.raises(DataError, match=r"holds no train file .*found: part1.conll, part2.conll\)"):
        split_files(folder)
