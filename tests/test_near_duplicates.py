"""data.duplicates: normalized treats texts differing only in case, punctuation or spacing as one,
for duplicate removal and for the train/test overlap check; counts are reported."""
import pytest

from domainft.data import prepare_examples
from domainft.data.splits import normalized_text
from domainft.recipe import DataSpec


def test_normalized_text_ignores_case_punctuation_and_spacing():
    assert normalized_text("Sales rose 5%.") == normalized_text("  sales ROSE 5 %") == "sales rose 5"
    assert normalized_text("Sales rose") != normalized_text("Sales fell")


def write(path, rows):
    path.write_text("text,label\n" + "".join(f'"{t}",{label}\n' for t, label in rows), encoding="utf-8")
    return path


ROWS = [(f"Company {i} reported results", "x" if i % 2 else "y") for i in range(40)]


@pytest.mark.parametrize("mode, removed", [("exact", 0), ("normalized", 2)])
def test_near_duplicates_are_removed_only_when_asked(tmp_path, mode, removed):
    near = [("company 3 reported results!", "x"), ("COMPANY  4 reported results", "y")]
    path = write(tmp_path / "d.csv", ROWS + near)
    bundle = prepare_examples(DataSpec(path=str(path), duplicates=mode))
    assert bundle.report["duplicates"] == mode and bundle.report["duplicates_removed"] == removed
    assert sum(bundle.report["counts"].values()) == len(ROWS) + 2 - removed


def test_near_duplicates_with_other_labels_are_conflicts(tmp_path):
    path = write(tmp_path / "d.csv", ROWS + [("company 3 reported results.", "y")])
    report = prepare_examples(DataSpec(path=str(path), duplicates="normalized")).report
    assert report["conflicting_texts_removed"] == 1 and report["conflicting_rows_removed"] == 2


def test_overlap_between_given_files_is_checked_on_normalized_text(tmp_path):
    train = write(tmp_path / "train.csv", ROWS)
    test = write(tmp_path / "test.csv", [("Company 3 reported results.", "x"), ("Something else entirely", "y")])
    exact = prepare_examples(DataSpec(train=str(train), test=str(test))).report
    near = prepare_examples(DataSpec(train=str(train), test=str(test), duplicates="normalized")).report
    assert exact["overlap_train_test"] == 0 and near["overlap_train_test"] == 1
