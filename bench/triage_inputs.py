"""Diagnostic for the triage recipe's target: how far do the recipe's inputs alone carry a model?

The target asks for under-triage below the nurses' 10.3% at accuracy within 10 points of theirs
(85.3% on the whole file). The nurses saw the patient; a model sees only the recipe's inputs
(chief complaint, demographics, arrival, injury, mental state, pain, vital signs). This script fits
classic tabular models on exactly those inputs (the columns of its text_template, read as domainft
reads them, typed by its data.columns: text as character n-grams, coded cells one-hot, numbers with
missing-value indicators), with 5-fold stratified cross-validation over all
1267 patients (so every patient is scored once, by a model that did not train on it), and reports
for each the most probable level and the escalation rule (domainft.ordinal.escalate, the recipe's
`decision.escalate_threshold`) at every threshold: the best accuracy any threshold reaches with
under-triage below 10.3% says whether the target is within these inputs' reach for such models.

    python bench/triage_inputs.py [--folds 5] [--seed 13] [--data FILE]

No text encoder is trained here (a few minutes on a CPU, mostly the boosted trees); the recipe's
MiniLM results are in README.md.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from domainft.cells import as_text, parse_number
from domainft.data.readers import delimited_rows, read_text, template_fields
from domainft.errors import DomainftError
from domainft.ordinal import FINE_SWEEP, escalate, severity_rates
from domainft.recipe import Recipe

from runner import NURSES_PUBLISHED, REAL_DATA, TRIAGE_ACCURACY_MARGIN, recipe_file


def inputs(spec) -> dict[str, list[str]]:
    """The template's columns by kind, as the recipe's data.columns declares them."""
    fields = template_fields(spec.text_template)
    return {"text": [f for f in fields if f not in spec.columns],
            "coded": [f for f in fields if f in spec.columns and not spec.columns[f].number],
            "numeric": [f for f in fields if f in spec.columns and spec.columns[f].number]}


def load(spec, kinds: dict[str, list[str]]):
    """Every row of the recipe's file, read as domainft reads it (encoding, delimiter, missing
    markers, decimal commas): numbers as floats (NaN when missing), coded and text cells as text."""
    import pandas as pd

    missing = frozenset(spec.missing_values)
    _, rows = delimited_rows(spec.path, read_text(spec.path, spec.encoding), spec.delimiter)
    table = []
    for _, row in rows:
        cells = {c: as_text(row[c]) for c in row}
        record = {c: np.nan if cells[c] in missing else parse_number(cells[c], c) for c in kinds["numeric"]}
        record.update({c: "missing" if cells[c] in missing else cells[c] for c in kinds["coded"] + kinds["text"]})
        record.update(gold=cells[spec.label_column], reference=cells[spec.reference_column])
        table.append(record)
    return pd.DataFrame(table)


def models(seed: int, kinds: dict[str, list[str]]) -> dict:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def columns(dense: bool):
        return ColumnTransformer([
            *((f"text {c}", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True), c)
              for c in kinds["text"]),
            ("coded", OneHotEncoder(handle_unknown="ignore"), kinds["coded"]),
            ("numeric", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), kinds["numeric"]),
        ], sparse_threshold=0.0 if dense else 0.3)

    return {
        "logistic regression (balanced)": make_pipeline(
            columns(False), LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced")),
        "logistic regression": make_pipeline(columns(False), LogisticRegression(C=1.0, max_iter=3000)),
        "gradient-boosted trees (balanced)": make_pipeline(
            columns(True), HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05,
                                                          class_weight="balanced", random_state=seed)),
        "gradient-boosted trees": make_pipeline(
            columns(True), HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)),
    }


def scores(y: np.ndarray, pred: np.ndarray) -> dict:
    from sklearn.metrics import f1_score

    return {"accuracy": float(np.mean(pred == y)), "macro_f1": float(f1_score(y, pred, average="macro")),
            **severity_rates(y, pred)}


def reach(y: np.ndarray, probs: np.ndarray, under_target: float) -> str:
    """The best accuracy the escalation rule reaches at any threshold with under-triage below the target."""
    best = None
    for threshold in FINE_SWEEP:
        t = scores(y, escalate(probs, threshold))
        if t["under_triage"] < under_target and (best is None or t["accuracy"] > best[1]["accuracy"]):
            best = threshold, t
    return (f"{100 * best[1]['accuracy']:.1f} (under {100 * best[1]['under_triage']:.1f}, "
            f"threshold {best[0]})" if best else "none")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--data", help="the KTAS file (default: the recipe's real-data path in ../shared)")
    args = p.parse_args(argv)

    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    overrides = [f"data.path={args.data}"] if args.data else REAL_DATA["medical_triage"]
    spec = Recipe.from_yaml(recipe_file("medical_triage")).override(overrides).data
    kinds = inputs(spec)
    try:
        df = load(spec, kinds)
    except (DomainftError, ValueError) as e:  # a missing file, or a cell that is not a number
        sys.exit(f"error: {e}")
    y = df["gold"].map(spec.labels.index).to_numpy()  # 0 = most urgent, as the recipe lists them
    nurses = df["reference"].map(spec.labels.index).to_numpy()
    under_target = NURSES_PUBLISHED["under_triage"]
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    print(f"KTAS, {len(df)} patients, {args.folds}-fold cross-validation (seed {args.seed}); target: "
          f"under-triage < {100 * under_target:.1f}% at accuracy >= "
          f"{100 * (NURSES_PUBLISHED['accuracy'] - TRIAGE_ACCURACY_MARGIN):.1f}%\n")
    print("| model | accuracy | macro-F1 | under-triage | over-triage "
          f"| best accuracy with under-triage < {100 * under_target:.1f}% (threshold) |")
    print("|---|---|---|---|---|---|")
    n = scores(y, nurses)
    print(f"| triage nurses ({spec.reference_column}) | {100 * n['accuracy']:.1f} | {100 * n['macro_f1']:.1f} "
          f"| {100 * n['under_triage']:.1f} | {100 * n['over_triage']:.1f} | – |")
    for name, model in models(args.seed, kinds).items():
        probs = cross_val_predict(model, df, y, cv=folds, method="predict_proba")
        s = scores(y, probs.argmax(-1))
        print(f"| {name} | {100 * s['accuracy']:.1f} | {100 * s['macro_f1']:.1f} | {100 * s['under_triage']:.1f} "
              f"| {100 * s['over_triage']:.1f} | {reach(y, probs, under_target)} |")


if __name__ == "__main__":
    main()
