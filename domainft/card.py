"""The model card (README.md) of an exported bundle, written from its manifest."""
from __future__ import annotations


def model_card(m: dict) -> str:
    files, parity = m["files"], m["parity"]
    int8 = parity.get("int8")
    lines = [
        f"# {m['task']} model ({m['tuning']['method']} on {m['base']})",
        "",
        f"Exported by domainft {m['domainft_version']}. {_outputs(m)}. Inputs: "
        f"{', '.join(m['inputs'])} (int64, batch x tokens); output: `logits`. Max length {m['max_length']} tokens"
        + (f"; longer sentences are split into windows sharing {m['stride']} tokens." if m["task"] == "ner" else
           "; longer texts are truncated."),
        "",
        "| file | precision | size (MB) |",
        "|---|---|---|",
        f"| {files['fp32']['file']} | fp32 | {files['fp32']['mb']} |",
    ]
    if files["int8"]:
        lines.append(f"| {files['int8']['file']} | int8 ({int8['quantization'].get('mode', 'dynamic')}, "
                     f"{int8['quantization']['preset']}) | {files['int8']['mb']} |")
    lines += ["", "## Quality", "", "| split | " + " | ".join(_metric_names(m)) + " |",
              "|---|" + "---|" * len(_metric_names(m))]
    for split, scores in m["metrics"].items():
        lines.append(f"| {split} (PyTorch) | " + " | ".join(f"{scores.get(k, float('nan')):.4f}"
                                                             for k in _metric_names(m)) + " |")
    lines += ["", f"Parity on {parity['examples']} validation examples: fp32 ONNX logits within "
                  f"{parity['max_abs_diff']:.2e} of PyTorch's (limit {parity['limit']:g})."]
    if int8:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in int8["metrics"].items())
        lines.append(f"int8: {shown} on validation, {int8['drop_points']:.2f} points below PyTorch "
                     f"(limit {int8['max_drop_points']:g}); "
                     + ("written." if int8["written"] else f"not written: {int8['reason']}"))
        lines.append(_int8_scheme(int8["quantization"]))
    if m.get("thresholds"):
        t = m["thresholds"]
        shown = ", ".join(f"{k} {v:g}" for k, v in t["values"].items()) or f"{t['default']:g} for every label"
        lines += ["", f"Multi-label: a label is predicted when its sigmoid probability reaches its threshold "
                      f"({t['rule']}: {shown}); predict returns {{'labels', 'scores'}}."]
    if m.get("lexicon"):
        lines += ["", f"The tokenizer carries {m['lexicon']['terms_added']} domain terms added as whole-word "
                      "tokens; tokenizer.json holds them."]
    lines += ["", "## Use", "", "```bash", 'domainft predict . "some text"', "```", "", "```python",
              "from domainft.serving import load   # onnxruntime + tokenizers + numpy, no torch",
              'load(".").predict(["some text"])', "", "from optimum.onnxruntime import " + _ort_class(m),
              f'model = {_ort_class(m)}.from_pretrained(".")', "```", ""]
    return "\n".join(lines)


def _int8_scheme(q: dict) -> str:
    if q.get("mode") == "static":
        return (f"int8 is static: {q['weights']} weights per channel, {q['activations']} activations whose "
                f"ranges were calibrated ({q.get('calibration_method', 'MinMax')}) on "
                f"{q['calibration_examples']} {q.get('calibration_split', 'validation')} examples and are "
                "constants in the graph (QDQ), so a text's int8 scores are the same whatever it is batched "
                "with.")
    return ("int8 is dynamic: each layer's activation scale is computed at run time over the whole batch, "
            "padding included, so a text's int8 scores can change with the texts batched with it; "
            "domainft.serving runs this model one text at a time (serve model.onnx to batch).")


METRIC_NAMES = {"ner": ["f1", "precision", "recall"],
                "multilabel": ["micro_f1", "macro_f1", "samples_f1", "subset_accuracy"],
                "regression": ["mse", "mae", "pearson", "spearman"]}


def _outputs(m: dict) -> str:
    if m["task"] != "regression":
        return f"Labels: {', '.join(m['labels'])}"
    t = m["targets"]
    scaled = (" (standardized: the value is logit x std + mean, with the training targets' "
              f"mean {', '.join(f'{v:g}' for v in t['mean'])} and std {', '.join(f'{v:g}' for v in t['std'])})"
              if t.get("standardized", True) else "")
    return f"Regression targets: {', '.join(t['names'])}, one `logits` column each{scaled}"


def _metric_names(m: dict) -> list[str]:
    return METRIC_NAMES.get(m["task"], ["accuracy", "macro_f1"])


def _ort_class(m: dict) -> str:
    return "ORTModelForTokenClassification" if m["task"] == "ner" else "ORTModelForSequenceClassification"
