import json
from collections import Counter

import pytest

from domainft.data import TextFields, prepare_examples, read_examples
from domainft.data.splits import deduplicate
from domainft.errors import DataError
from domainft.recipe import DataSpec

from conftest import SAMPLE


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_phrasebank_latin1_splits_on_last_at(tmp_path):
    f = write(tmp_path / "fpb.txt", "Price @ EUR 3 for Seppälä@positive\nFlat year .@neutral\n", "latin-1")
    exs = read_examples(f, "phrasebank", TextFields())
    assert [(e.text, e.label, e.line) for e in exs] == [
        ("Price @ EUR 3 for Seppälä", "positive", 1), ("Flat year .", "neutral", 2)]


def test_phrasebank_line_without_label(tmp_path):
    f = write(tmp_path / "fpb.txt", "ok@neutral\nno label here\n")
    with pytest.raises(DataError, match=r"fpb.txt line 2: expected 'sentence@label'"):
        read_examples(f, "auto", TextFields())


def test_csv_template_over_columns(tmp_path):
    f = write(tmp_path / "d.csv", 'title,body,y\nQ3,"Sales up, a lot",pos\n')
    exs = read_examples(f, "auto", TextFields(template="{title}: {body}", label_column="y"))
    assert exs[0].text == "Q3: Sales up, a lot" and exs[0].label == "pos"


def test_missing_column_lists_columns(tmp_path):
    f = write(tmp_path / "d.csv", "sentence,label\nhi,pos\n")
    with pytest.raises(DataError, match=r"no column 'text'; columns are: sentence, label. Set data.text_column"):
        read_examples(f, "csv", TextFields())


def test_tsv_and_jsonl(tmp_path):
    tsv = write(tmp_path / "d.tsv", "text\tlabel\na b\tx\n")
    assert read_examples(tsv, "auto", TextFields())[0].text == "a b"
    jl = write(tmp_path / "d.jsonl", json.dumps({"text": "a", "label": 1}) + "\n\n{bad\n")
    with pytest.raises(DataError, match=r"d.jsonl line 3: not valid JSON"):
        read_examples(jl, "auto", TextFields())


def test_undecodable_bytes_name_the_line(tmp_path):
    f = tmp_path / "d.csv"
    f.write_bytes(b"text,label\nfine,a\nbad \xff byte,b\n")
    with pytest.raises(DataError, match=r"d.csv line 3: .* not valid utf-8-sig; set data.encoding"):
        read_examples(f, "csv", TextFields())


def test_csv_line_numbers_follow_multiline_cells(tmp_path):
    f = write(tmp_path / "d.csv", 'text,label\n"two\nlines",a\n,b\n')
    spec = DataSpec(train=f, validation=f)
    with pytest.raises(DataError, match=r"d.csv line 4: empty text"):
        prepare_examples(spec)


def test_unseen_label_in_test_file(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,x\nb,y\nc,x\n")
    test = write(tmp_path / "test.csv", "text,label\nd,x\ne,z\n")
    with pytest.raises(DataError, match=r"test.csv line 3: label 'z' never occurs in the training data"):
        prepare_examples(DataSpec(train=train, validation=train, test=test))


def test_declared_labels_reject_others(tmp_path):
    train = write(tmp_path / "train.csv", "text,label\na,x\nb,y\nc,w\n")
    with pytest.raises(DataError, match=r"train.csv line 4: label 'w' is not in data.labels"):
        prepare_examples(DataSpec(train=train, validation=train, labels=["x", "y"]))


def test_missing_file_message(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        prepare_examples(DataSpec(path=tmp_path / "nope.csv"))


def test_dedup_removes_exact_and_conflicting(tmp_path):
    f = write(tmp_path / "d.txt", "a@x\na@x\nb@x\nb@y\nc@y\n")
    kept, report = deduplicate(read_examples(f, "auto", TextFields()))
    assert [e.text for e in kept] == ["a", "c"]
    assert (report.duplicates_removed, report.conflicting_texts, report.conflicting_rows_removed) == (1, 1, 2)


def test_split_is_seeded_stratified_and_disjoint():
    spec = DataSpec(path=SAMPLE, format="phrasebank")
    a, b = prepare_examples(spec), prepare_examples(spec)
    assert [e.text for e in a.test] == [e.text for e in b.test]
    texts = [set(e.text for e in split) for split in (a.train, a.validation, a.test)]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert a.report["duplicates_removed"] == 2
    n = sum(a.report["counts"].values())
    assert abs(len(a.test) - 0.1 * n) <= 1
    share = lambda exs, lab: sum(e.label == lab for e in exs) / len(exs)  # noqa: E731
    assert abs(share(a.test, "neutral") - share(a.train, "neutral")) < 0.05
    other = prepare_examples(spec.model_copy(update={"split": spec.split.model_copy(update={"seed": 1})}))
    assert [e.text for e in other.test] != [e.text for e in a.test]


def test_stratify_needs_three_per_label(tmp_path):
    f = write(tmp_path / "d.txt", "".join(f"t{i}@x\n" for i in range(20)) + "lonely@y\n")
    with pytest.raises(DataError, match=r"label 'y' has only 1 example\(s\) \(first at .*d.txt line 21\)"):
        prepare_examples(DataSpec(path=f))


def test_labels_sorted_and_stored_explicitly():
    bundle = prepare_examples(DataSpec(path=SAMPLE, format="phrasebank"))
    assert bundle.labels == ["negative", "neutral", "positive"]
    assert set(Counter(e.label for e in bundle.test)) == set(bundle.labels)


def test_truncated_texts_are_counted_exactly(tiny_base):
    from transformers import AutoTokenizer

    from domainft.data.readers import Example
    from domainft.recipe import DataSpec
    from domainft.tasks import get_task

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    texts = ["short", "word " * 14, "word " * 30]  # 3, 16 and 32 tokens with [CLS]/[SEP]
    examples = [Example(t, "a", "f", i) for i, t in enumerate(texts, 1)]
    spec = DataSpec(path="unused", max_length=16)
    task = get_task("classification")
    encoded = task.encode(examples, tokenizer, {"a": 0}, spec)
    assert [len(ids) for ids in encoded["input_ids"]] == [3, 16, 16]
    assert task.count_truncated(examples, tokenizer, spec, encoded) == 1
