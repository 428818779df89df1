"""Model cards: model/README.md (written with the saved model) and the exported bundle's README.md.

Both open with Hugging Face front matter (base_model, library_name, pipeline_tag, tags, metrics and
a model-index with the test scores, which `huggingface_hub.ModelCard` reads), then say what the
model reads and returns, how well it did, and how to load it: through domainft, and with the
libraries alone (transformers / peft / adapters for model/, Optimum or onnxruntime for the bundle).
One set of pieces serves both cards: the front matter, the inputs and scores paragraphs, the
evaluation table, and the code that tokenizes as training did and turns logits into answers.

Inputs: the model manifest (model/domainft.json) and metrics.json's content; the bundle card adds
the bundle manifest (files, parity, int8).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from domainft.bases import ALIASES, hub_origin
from domainft.clientcode import client_notes, ner_algorithm, ner_snippet, node_snippet, onnxruntime_snippet
from domainft.gguf import PackagedGguf
from domainft.serving import FP32_FILE, INT8_FILE

PIPELINE_TAGS = {"ner": "token-classification", "generation": "text-generation"}  # else text-classification
PIPELINE_NAMES = {"text-classification": "Text Classification", "token-classification": "Token Classification",
                  "text-generation": "Text Generation"}
# How model/ is saved by each tuning method (methods/*.py: save), as the Hub names the library.
LIBRARIES = {"full": "transformers", "freeze": "transformers", "lora": "peft", "qlora": "peft",
             "adapter": "adapter-transformers"}
AUTO_CLASSES = {"ner": "AutoModelForTokenClassification", "generation": "AutoModelForCausalLM"}
TASK_TEXT = {"classification": "text classification", "multilabel": "multi-label text classification",
             "regression": "text regression", "ner": "named-entity recognition (token classification)",
             "generation": "instruction following (text generation)"}

# metrics.json key -> (model-index type, display name, args), in the order the cards show them.
INDEX_METRICS: dict[str, list[tuple[str, str, str, dict | None]]] = {
    "classification": [("accuracy", "accuracy", "Accuracy", None),
                       ("macro_f1", "f1", "Macro F1", {"average": "macro"}),
                       ("weighted_f1", "f1", "Weighted F1", {"average": "weighted"}),
                       ("under_triage", "under_triage", "Under-triage rate (predicted less severe than gold)", None),
                       ("over_triage", "over_triage", "Over-triage rate (predicted more severe than gold)", None)],
    "multilabel": [("micro_f1", "f1", "Micro F1", {"average": "micro"}),
                   ("macro_f1", "f1", "Macro F1", {"average": "macro"}),
                   ("samples_f1", "f1", "Samples F1", {"average": "samples"}),
                   ("subset_accuracy", "accuracy", "Subset accuracy (exact match)", None)],
    "ner": [("f1", "f1", "Entity F1 (seqeval, strict IOB2)", None),
            ("precision", "precision", "Entity precision", None),
            ("recall", "recall", "Entity recall", None)],
    "regression": [("mse", "mse", "MSE", None), ("mae", "mae", "MAE", None),
                   ("pearson", "pearsonr", "Pearson r", None), ("spearman", "spearmanr", "Spearman rho", None),
                   ("r2", "r_squared", "R squared", None)],
    "generation": [("exact_match", "exact_match", "Exact match", None), ("token_f1", "f1", "Token F1", None),
                   ("perplexity", "perplexity", "Perplexity", None), ("loss", "loss", "Loss", None)],
}
BUNDLE_SKIP = {"n", "loss", "entities", "empty_gold", "empty_predicted"}  # counts, not scores


def dataset_of(recipe) -> dict:
    """What the cards name the training data: the Hub dataset id, else the data file's (or
    directory's) name without suffixes, else the recipe's name; and the templates that built the
    texts from columns, if any (metrics.json: run.dataset)."""
    d = recipe.data
    if d.hub is not None:
        found = {"name": d.hub.id, "hub_id": d.hub.id}
    else:
        source = d.path or d.train
        found = {"name": Path(source).name.split(".")[0] if source else recipe.name}
    # Texts built from table columns: what a caller must build the same way.
    templates = {k: getattr(d, k, None) for k in ("text_template", "text_pair_template")}
    return {**found, **{k: v for k, v in templates.items() if v}}


# --- the two cards ------------------------------------------------------------------------------

def model_card(manifest: dict, metrics: dict) -> str:
    """model/README.md: the saved PyTorch model."""
    method = manifest["tuning"]["method"]
    lines = [front_matter(manifest, metrics, LIBRARIES.get(method)), *_about(manifest, metrics),
             *_evaluation(manifest, metrics), "## Use", "", *_use_domainft(manifest), ""]
    loader = _loader(method)
    if loader is None or manifest["task"] not in TASK_TEXT:  # a plug-in's own format or outputs
        lines += ["This model was made with a plug-in (a tuning method or task of the user's own): load it with "
                  "domainft.load after importing the plug-in's code (`--code FILE` on the command line).", ""]
    else:
        lines += [f"With {_library_words(method)} alone{_loader_note(manifest)}:", "", "```python",
                  *python_snippet(manifest, loader), "```", ""]
    return "\n".join(lines)


def bundle_card(bundle: dict, manifest: dict, metrics: dict) -> str:
    """The exported ONNX bundle's README.md (export.py)."""
    files, parity = bundle["files"], bundle["parity"]
    int8 = parity.get("int8")
    lines = [front_matter(manifest, metrics, None, extra_tags=("onnx",)), *_about(manifest, metrics, bundle=True),
             f"ONNX graph inputs: {', '.join(bundle['inputs'])} (int64, batch x tokens); output: `logits`.", "",
             "| file | precision | size (MB) |", "|---|---|---|",
             f"| {files['fp32']['file']} | fp32 | {files['fp32']['mb']} |"]
    if files["int8"]:
        lines.append(f"| {files['int8']['file']} | int8 ({int8['quantization'].get('mode', 'dynamic')}, "
                     f"{int8['quantization']['preset']}) | {files['int8']['mb']} |")
    lines += ["", *_evaluation(manifest, metrics, splits=bundle["metrics"]),
              f"Parity on {parity['examples']} validation examples: fp32 ONNX logits within "
              f"{parity['max_abs_diff']:.2e} of PyTorch's (limit {parity['limit']:g})."]
    if int8:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in int8["metrics"].items())
        lines.append(f"int8: {shown} on validation, {int8['drop_points']:.2f} points below PyTorch "
                     f"(limit {int8['max_drop_points']:g}); "
                     + ("written." if int8["written"] else f"not written: {int8['reason']}"))
        lines.append(_int8_scheme(int8["quantization"]))
    lines += ["", "## Use", "", "Without torch (onnxruntime, tokenizers and numpy; windows, decision rules and "
              "thresholds applied as in training):", "", "```bash", 'domainft predict . "some text"', "```", "",
              "```python", "from domainft.serving import load", 'load(".").predict(["some text"])'
              + (f'  # int8 when present; precision="fp32" for {files["fp32"]["file"]}' if files["int8"] else ""),
              "```", ""]
    task = manifest["task"]
    if task not in TASK_TEXT:  # a plug-in task's outputs are its own
        return "\n".join(lines)
    lines += client_notes(bundle)
    if task == "ner":
        lines += ["With onnxruntime, tokenizers and numpy alone (domainft's windows and decoding, from "
                  "domainft.json):", "", "```python", *ner_snippet(bundle), "```", "", *ner_algorithm(bundle)]
    else:
        lines += ["With onnxruntime, tokenizers and numpy alone:", "", "```python",
                  *onnxruntime_snippet(bundle, _score_lines(manifest)), "```", ""]
    lines += ["With Optimum's ONNX Runtime classes (the transformers API over the graph; from_pretrained picks "
              f"{files['fp32']['file']}):", "", "```python", *python_snippet(manifest, "optimum"), "```", ""]
    node = node_snippet(bundle)
    if node:
        lines += ["With Node.js (@huggingface/transformers, default file lookup):", "", "```js", *node, "```", ""]
    else:
        lines += ["Node.js: @huggingface/transformers loads the bundle with its default options, but its "
                  "pipelines do not " + ("window long sentences or tag words by domainft's rule: port the "
                                         "algorithm above, or serve through domainft." if task == "ner" else
                                         "read long inputs in windows or text pairs as this model was trained: "
                                         "port the Python code above, or serve through domainft."), ""]
    return "\n".join(lines)


# --- shared pieces --------------------------------------------------------------------------------

def front_matter(manifest: dict, metrics: dict, library_name: str | None, extra_tags=()) -> str:
    """The YAML block a Hub model card opens with."""
    task, method = manifest["task"], manifest["tuning"]["method"]
    run = metrics.get("run", {})
    data: dict = {}
    base_id = base_hub_id(manifest)
    if base_id:
        data["base_model"] = base_id
    if library_name:
        data["library_name"] = library_name
    data["pipeline_tag"] = PIPELINE_TAGS.get(task, "text-classification")
    if run.get("language"):
        data["language"] = run["language"]
    dataset = _dataset(metrics)
    if dataset.get("hub_id"):
        data["datasets"] = [dataset["hub_id"]]
    data["tags"] = list(dict.fromkeys(["domainft", task, method, *extra_tags]))
    results = _index_results(manifest, metrics)
    if results:
        data["metrics"] = list(dict.fromkeys(m["type"] for r in results for m in r["metrics"]))
        data["model-index"] = [{"name": run.get("name") or "domainft-model", "results": results}]
    return "---\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + "---\n"


def _index_results(manifest: dict, metrics: dict) -> list[dict]:
    """model-index results: the test split's scores (validation when the run had no test split)."""
    split = next((s for s in ("test", "validation") if metrics.get(s)), None)
    if split is None:
        return []
    scores = metrics[split]
    rows = []
    for key, kind, name, args in _metric_table(manifest["task"], scores):
        row = {"type": kind, "value": round(float(scores[key]), 4), "name": f"{name} ({split})"}
        if args:
            row["args"] = args
        rows.append(row)
    if not rows:
        return []
    pipeline = PIPELINE_TAGS.get(manifest["task"], "text-classification")
    dataset = _dataset(metrics)
    return [{"task": {"type": pipeline, "name": PIPELINE_NAMES[pipeline]},
             "dataset": {"name": dataset["name"], "type": dataset.get("hub_id") or dataset["name"], "split": split},
             "metrics": rows}]


def _metric_table(task: str, scores: dict) -> list[tuple[str, str, str, dict | None]]:
    known = INDEX_METRICS.get(task)
    if known is None:  # a plug-in task: its scalar scores under their own names
        known = [(k, k, k, None) for k, v in scores.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in BUNDLE_SKIP]
    return [row for row in known if isinstance(scores.get(row[0]), (int, float))]


def _about(manifest: dict, metrics: dict, bundle: bool = False) -> list[str]:
    task, tuning = manifest["task"], manifest["tuning"]
    run = metrics.get("run", {})
    kind = "ordinal text classification" if _ordinal(manifest) else TASK_TEXT.get(task, f"task `{task}`")
    options = ", ".join(f"{k} {v}" for k, v in tuning.items() if k != "method" and v is not None)
    article = "An" if kind[0] in "aeiou" else "A"
    lines = [f"# {run.get('name') or task}", "",
             f"{article} {kind} model fine-tuned from {_base_words(manifest)} by domainft "
             f"{manifest.get('domainft_version', '')} (tuning method `{tuning['method']}`"
             f"{', ' + options if options else ''}) on {_dataset(metrics)['name']}"
             + ("; this is its ONNX export." if bundle else "."), ""]
    lines += [_outputs(manifest), "", _inputs(manifest), "", *_templates(metrics), _scores(manifest), ""]
    if manifest.get("lexicon"):
        lines += [f"The tokenizer carries {manifest['lexicon']['terms_added']} domain terms added as whole-word "
                  "tokens (tokenizer.json holds them), each with a trained embedding row.", ""]
    if metrics.get("distill"):
        lines += [_distilled(metrics["distill"]), ""]
    return lines


def _distilled(d: dict) -> str:
    scores = ", ".join(f"{k} {v:.4f}" for k, v in (d.get("teacher_test") or {}).items() if k not in ("loss", "n"))
    transfer = d.get("transfer") or {}
    augment = d.get("augment") or {}
    extra = (f", and on {transfer['texts']} unlabelled transfer texts the teacher labelled" if transfer.get("texts")
             else "")
    if augment.get("texts"):
        extra += (f"{',' if extra else ', and'} on {augment['texts']} perturbed copies of the training texts "
                  "(words dropped, spans sampled) the teacher labelled")
    return (f"Distilled from the teacher run `{d['teacher']}` (base {d.get('teacher_base')}"
            f"{'; its test ' + scores if scores else ''}): trained on the gold labels and the teacher's soft targets "
            f"(weight {d['alpha']:g}, temperature {d['temperature']:g}){extra}.")


def _outputs(m: dict) -> str:
    task, labels = m["task"], m["labels"]
    if task == "regression":
        return f"Targets: {', '.join(m['targets']['names'])} (one output column each)."
    if task == "ner":
        types = sorted({t[2:] for t in labels if t[:2] in ("B-", "I-")})
        return f"Entity types: {', '.join(types)} (IOB2 tags: {', '.join(labels)})."
    if task == "multilabel":
        return f"Labels (any number per text, none included): {', '.join(labels)}."
    if task == "generation":
        return "Answers instructions in the base's chat format (the loss was on the responses only)."
    if _ordinal(m):
        return f"Labels, ordered from the most to the least severe: {', '.join(labels)}."
    return f"Labels: {', '.join(labels)}."


def _inputs(m: dict) -> str:
    n, stride = m["max_length"], m.get("stride", 32)
    if m["task"] == "ner":
        return (f"Input: a sentence, split into words (or a list of words); each word's tag is read from its "
                f"first subword. Up to {n} tokens per window: domainft and the bundle split a longer sentence "
                f"into windows sharing {stride} tokens and take each word's tag from the window where it sits "
                "best; nothing is truncated.")
    if m["task"] == "generation":
        return f"Training sequences were cut at {n} tokens (prompt and response together)."
    t = m.get("text_inputs") or {}
    pair = t.get("text_pair")
    text = "Input: a text and a second text (a pair, tokenized together with segment ids)" if pair else "Input: a text"
    if t.get("long_inputs") == "windows":
        over = " (over the second text, the first kept whole in each)" if pair else ""
        long = (f"a longer input is read in windows of {n} tokens sharing {stride} tokens{over}, and the windows' "
                f"logits are pooled by their {t.get('window_pooling', 'mean')}")
    else:
        long = "a longer input is truncated" + (" (the longer text of the pair first)" if pair else "")
    return f"{text}. Max length {n} tokens; {long}, by domainft, its bundle and the code below alike."


def _templates(metrics: dict) -> list[str]:
    dataset = _dataset(metrics)
    shown = [f"`{dataset[k]}`" + (" (the second text)" if k == "text_pair_template" else "")
             for k in ("text_template", "text_pair_template") if dataset.get(k)]
    if not shown:
        return []
    return [f"Training built each text from table columns (data.text_template): {'; '.join(shown)}. domainft "
            "builds new rows the same way: `predict` of the model and of its bundle takes rows {column: value}, "
            "and `domainft predict --input` a CSV or JSONL of them. Other clients build inputs the same way "
            "before predicting (domainft.json's `text_inputs.records` has the column settings: codes, units, "
            "missing markers, flags).", ""]


def _scores(m: dict) -> str:
    task = m["task"]
    if task == "regression":
        t = m["targets"]
        if not t.get("standardized", True):
            return "Values: the outputs themselves, in the data's units."
        return ("Values: in the data's units, the output de-standardized: value = output x std + mean, with the "
                f"training targets' mean {_numbers(t['mean'])} and std {_numbers(t['std'])}.")
    if task == "multilabel":
        th = m.get("thresholds") or {}
        values = th.get("values") or {}
        shown = ", ".join(f"{k} {v:g}" for k, v in values.items()) or f"{th.get('default', 0.5):g} for every label"
        return ("Scores: one sigmoid probability per label, independent of the others (they need not sum to 1); a "
                f"label is predicted when its probability reaches its threshold ({th.get('rule', 'fixed')}: {shown}).")
    if task == "ner":
        return ("Scores: softmax probabilities over the tags per word; an entity's score is the mean probability "
                "of its words' tags.")
    if task == "generation":
        return "Generation is greedy unless sampling is asked for."
    line = "Scores: softmax probabilities over the labels (they sum to 1); the label is the most probable one"
    threshold = (m.get("decision") or {}).get("escalate_threshold")
    if threshold is not None:
        line += (f", escalated by the run's decision rule: the most severe label whose probability, together with "
                 f"every more severe label's, reaches {threshold:g} (never a less severe label than the most "
                 "probable)")
        if (m.get("decision") or {}).get("max_under_rate") is not None:
            line += ("; the threshold was chosen on validation for an under rate of at most "
                     f"{m['decision']['max_under_rate']:g}")
    return line + "."


def _evaluation(manifest: dict, metrics: dict, splits: dict | None = None) -> list[str]:
    splits = splits or {s: metrics[s] for s in ("validation", "test") if metrics.get(s)}
    if not splits:
        return []
    columns = _metric_table(manifest["task"], next(iter(splits.values())))
    lines = ["## Evaluation", "", "| split | n | " + " | ".join(name for _, _, name, _ in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for split, scores in splits.items():
        n = scores.get("n", (metrics.get(split) or {}).get("n", ""))
        lines.append(f"| {split} | {n} | " + " | ".join(f"{scores[k]:.4f}" if k in scores else "-"
                                                        for k, *_ in columns) + " |")
    lines += ["", "Scores of the best checkpoint, chosen on validation (PyTorch); the test split was used for "
              "nothing else."]
    ref = (metrics.get("test") or {}).get("reference")
    if ref and "accuracy" in ref:
        extra = (f", under {ref['under_triage']:.1%}, over {ref['over_triage']:.1%}" if "under_triage" in ref else "")
        lines.append(f"The reference rater ({ref['column']}) on the same test examples: accuracy "
                     f"{ref['accuracy']:.1%}{extra} (n {ref['n']}).")
    return lines + [""]


def _use_domainft(m: dict) -> list[str]:
    if m["task"] == "generation":
        return ["With domainft (the run's system prompt and generation settings):", "", "```python",
                "import domainft", "", 'model = domainft.load(".")  # this directory, or the run directory above it',
                'model.generate(["Your instruction here."])', "```"]
    returns = {"classification": "[{'label', 'score', 'scores': {label: probability}}]",
               "multilabel": "[{'labels': [...], 'scores': {label: probability}}]",
               "regression": ("[{'value': v}]" if len(m.get("targets", {}).get("names", [])) == 1
                              else "[{'values': {target: v}}]"),
               "ner": "[{'entities': [{'type', 'start', 'end', 'text', 'score'}], 'words', 'tags'}]"}
    pair = (m.get("text_inputs") or {}).get("text_pair")
    example = '[("first text", "second text")]' if pair else '["Your text here."]'
    return ["With domainft (inputs read, and answers decided, exactly as in training and evaluation):", "",
            "```python", "import domainft", "",
            'model = domainft.load(".")  # this directory, or the run directory above it',
            f"model.predict({example})", f"# -> {returns.get(m['task'], 'one dict per text')}", "```", "",
            "or from a shell: `domainft predict . \"Your text here.\"`."]


def _loader(method: str) -> str | None:
    """How model/ loads without domainft: None for a plug-in method that saves its own way."""
    known = {"full": "transformers", "freeze": "transformers", "lora": "peft", "qlora": "peft", "adapter": "adapters"}
    if method in known:
        return known[method]
    from domainft.methods import METHODS, TuningMethod

    cls = METHODS.get(method) if method in METHODS else None
    return "transformers" if cls is not None and cls.save is TuningMethod.save else None


def _library_words(method: str) -> str:
    return {"peft": "transformers and peft", "adapters": "transformers and adapters"}.get(_loader(method),
                                                                                       "transformers")


def _loader_note(m: dict) -> str:
    notes = []
    t = m.get("text_inputs") or {}
    if t.get("long_inputs") == "windows":
        notes.append("windows as in training")
    if m["task"] == "ner":
        notes.append("the pipeline does not window long sentences: keep them under the max length, or use domainft")
    if m["tuning"]["method"] == "qlora":
        notes.append("the base loads here in full precision, training had it in 4-bit NF4, so outputs differ "
                     "slightly; `domainft merge` writes a merged model")
    return f" ({'; '.join(notes)})" if notes else ""


# --- the code snippets ------------------------------------------------------------------------------

def python_snippet(m: dict, loader: str) -> list[str]:
    """Code that loads the model with `loader` (transformers, peft, adapters, optimum or
    onnxruntime), tokenizes as training did and turns logits into answers. Run from the directory
    the card is in."""
    task = m["task"]
    auto = AUTO_CLASSES.get(task, "AutoModelForSequenceClassification")
    if loader == "optimum":
        auto = "ORTModelForTokenClassification" if task == "ner" else "ORTModelForSequenceClassification"
    lines = _imports(task, loader, auto, m)
    lines += ["", 'model_dir = "."  # this directory', "tokenizer = AutoTokenizer.from_pretrained(model_dir)"]
    lines += _load_lines(m, loader, auto)
    if task in ("ner", "generation"):  # no labels to decode here: the pipeline / generate does it
        lines = [line for line in lines if not line.startswith("id2label = ")]
    if task == "generation":
        return lines + _generate_lines(m)
    if task == "ner":
        return lines + _ner_lines()
    return lines + _tokenize_lines(m, loader) + _score_lines(m)


def _imports(task: str, loader: str, auto: str, m: dict) -> list[str]:
    text_task = task not in ("ner", "generation")  # tokenized and scored here (ner: the pipeline does it)
    lines = ["import numpy as np"] if text_task else []
    if loader == "onnxruntime":
        lines.append("import onnxruntime")
    if (text_task and loader in ("transformers", "peft", "adapters")) or _needs_rows(m, loader):
        lines.append("import torch")
    if loader == "adapters":
        lines += ["from adapters import init as init_adapters"]
    if loader == "optimum":
        lines += [f"from optimum.onnxruntime import {auto}"]
    if loader == "peft":
        lines += ["from peft import PeftModel"]
    if _needs_rows(m, loader) or loader == "adapters":
        lines += ["from safetensors.torch import load_file"]
    names = ["AutoTokenizer"] + ([] if loader in ("optimum", "onnxruntime") else [auto])
    if (loader in ("peft", "adapters") and task != "generation") or loader == "onnxruntime":
        names.insert(0, "AutoConfig")
    if task == "ner":
        names.append("pipeline")
    lines.append(f"from transformers import {', '.join(sorted(names))}")
    return lines


def _needs_rows(m: dict, loader: str) -> bool:
    """Lexicon runs whose model/ holds only what was trained: the added tokens' rows go back on the base."""
    return bool(m.get("lexicon")) and loader in ("peft", "adapters")


def _load_lines(m: dict, loader: str, auto: str) -> list[str]:
    if loader == "transformers":
        return [f"model = {auto}.from_pretrained(model_dir).eval()", "id2label = model.config.id2label"]
    if loader == "optimum":
        return [f'model = {auto}.from_pretrained(model_dir)  # {FP32_FILE}; file_name="{INT8_FILE.split("/")[-1]}" '
                "for int8",
                "id2label = model.config.id2label"]
    if loader == "onnxruntime":
        return [f'session = onnxruntime.InferenceSession(f"{{model_dir}}/{FP32_FILE}")  # or {INT8_FILE}',
                "id2label = AutoConfig.from_pretrained(model_dir).id2label"]
    base, comment = _base_to_load(m)
    lines = [f"base_id = {json.dumps(base)}  # {comment}"]
    if m["task"] == "generation":
        lines.append(f"base = {auto}.from_pretrained(base_id)")
    else:
        lines.append("config = AutoConfig.from_pretrained(model_dir)  # the run's labels and head size")
        if loader == "adapters":
            lines.append('config.__dict__.pop("adapters", None)  # the adapter set-up is rebuilt by load_adapter')
        if _needs_rows(m, loader):
            from domainft.lexicon.rows import ROWS_FILE

            lines += [f"config.vocab_size = AutoConfig.from_pretrained(base_id).vocab_size  # the base's own "
                      f"vocabulary, then the {m['lexicon']['terms_added']} added terms:",
                      f"base = {auto}.from_pretrained(base_id, config=config)",
                      "base.resize_token_embeddings(len(tokenizer), mean_resizing=False)",
                      f'rows = load_file(f"{{model_dir}}/{ROWS_FILE}")',
                      "with torch.no_grad():",
                      '    base.get_input_embeddings().weight[rows["ids"]] = rows["rows"]']
        else:
            lines.append(f"base = {auto}.from_pretrained(base_id, config=config)")
    if loader == "peft":
        merge = "" if m["task"] == "generation" else ".merge_and_unload()"
        lines.append(f"model = PeftModel.from_pretrained(base, model_dir){merge}.eval()"
                     + ("  # LoRA merged: a plain transformers model" if merge else ""))
        lines.append("id2label = model.config.id2label")
    else:  # adapters: the bottleneck adapter, then the weights trained beside it (the head)
        from domainft.methods.adapter import ADAPTER_NAME, HEAD_FILE

        lines += ["init_adapters(base)",
                  f'base.load_adapter(model_dir, load_as="{ADAPTER_NAME}", set_active=True, use_safetensors=True)',
                  f'base.load_state_dict(load_file(f"{{model_dir}}/{HEAD_FILE}"), strict=False)  # head (and pooler)',
                  "model = base.eval()", "id2label = model.config.id2label"]
    return lines


def _tokenize_lines(m: dict, loader: str) -> list[str]:
    t = m.get("text_inputs") or {}
    pair, windows = t.get("text_pair"), t.get("long_inputs") == "windows"
    numpy_in = loader == "onnxruntime"
    lines = ["", 'texts = ["Your text here."]']
    args = "texts"
    if pair:
        lines.append('pairs = ["The second text of each pair."]')
        args = "texts, pairs"
    truncation = '"only_second"' if (pair and windows) else "True"
    extra = f", stride={m.get('stride', 32)}, return_overflowing_tokens=True" if windows else ""
    lines.append(f"batch = tokenizer({args}, truncation={truncation}, max_length={m['max_length']}{extra}, "
                 f"padding=True, return_tensors=\"{'np' if numpy_in else 'pt'}\")")
    if windows:
        lines.append(f'rows_of = batch.pop("overflow_to_sample_mapping"){"" if numpy_in else ".numpy()"}'
                     "  # the text each window is from")
    if loader == "onnxruntime":
        lines.append('logits = session.run(["logits"], dict(batch))[0]')
    elif loader == "optimum":
        lines.append("logits = model(**batch).logits.numpy()")
    else:
        lines += ["with torch.no_grad():", "    logits = model(**batch).logits.float().numpy()"]
    if windows:
        how = t.get("window_pooling", "mean")
        lines.append(f"logits = np.stack([logits[rows_of == i].{how}(0) for i in range(len(texts))])  "
                     f"# windows pooled per text ({how})")
    return lines


def _score_lines(m: dict) -> list[str]:
    task = m["task"]
    if task == "regression":
        t = m["targets"]
        names = ", ".join(t["names"])
        if not t.get("standardized", True):
            return [f"values = logits  # one column per target: {names}, in the data's units"]
        return [f"mean, std = np.array({list(t['mean'])}), np.array({list(t['std'])})  # the training targets'",
                f"values = logits * std + mean  # de-standardized, one column per target: {names}"]
    lines = ["labels = [id2label[i] for i in range(len(id2label))]"]
    if task == "multilabel":
        th = m.get("thresholds") or {}
        default = float(th.get("default", 0.5))
        values = [float(np.float32((th.get("values") or {}).get(label, default))) for label in m["labels"]]
        return lines + ["probs = 1 / (1 + np.exp(-logits))  # sigmoid: one independent probability per label",
                        f"thresholds = np.array({values}, dtype=np.float32)  # per label ({th.get('rule')}; "
                        "domainft.json)",
                        "order = np.argsort(-probs, axis=-1, kind=\"stable\")  # most probable first",
                        "predicted = [[labels[i] for i in o if p[i] >= thresholds[i]] for o, p in zip(order, probs)]"]
    lines += ["probs = np.exp(logits - logits.max(-1, keepdims=True))",
              "probs /= probs.sum(-1, keepdims=True)  # softmax probabilities, one column per label"]
    threshold = (m.get("decision") or {}).get("escalate_threshold")
    if threshold is None:
        return lines + ["predicted = [labels[i] for i in probs.argmax(-1)]"]
    return lines + ["# The run's decision rule: the most severe label (labels run from most to least severe) whose "
                    "probability,", f"# with every more severe label's, reaches {threshold:g}; never less severe "
                    "than the most probable.", f"reach = probs.cumsum(-1) >= {threshold!r}", "reach[:, -1] = True",
                    "predicted = [labels[i] for i in np.minimum(probs.argmax(-1), reach.argmax(-1))]"]


def _ner_lines() -> list[str]:
    return ["", 'ner = pipeline("token-classification", model=model, tokenizer=tokenizer,',
            '               aggregation_strategy="first")  # a word is tagged by its first subword, as in training',
            'entities = ner(["Two siblings had ataxia-telangiectasia ."])',
            "# -> [[{'entity_group': type, 'score', 'word', 'start', 'end'}, ...]] per text"]


def _generate_lines(m: dict) -> list[str]:
    settings = m.get("generation") or {}
    system = settings.get("system_prompt")
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": "Your instruction here."}]
    return ["", f"messages = {messages!r}",
            "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\",",
            "                                       return_dict=True)",
            f"output = model.generate(**inputs, max_new_tokens={settings.get('max_new_tokens', 128)}, do_sample=False,",
            "                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)",
            'answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()']


# --- the base -----------------------------------------------------------------------------------

def base_hub_id(m: dict) -> str | None:
    base = m.get("base") or {}
    if "hub_id" in base:
        return base["hub_id"]
    if isinstance(base, dict) and base.get("requested"):  # a manifest from before the hub_id entry
        return hub_origin(base["requested"], base.get("path", ""), base.get("source", ""))
    return None


def _base_words(m: dict) -> str:
    base = m["base"]
    hub_id = base_hub_id(m)
    if hub_id:
        packaged = f" (domainft's packaged `{base['requested']}`)" if base.get("source") == "packaged" else ""
        return f"[{hub_id}](https://huggingface.co/{hub_id}){packaged}"
    return f"the local model `{base.get('path') or base.get('requested')}`"


def _base_to_load(m: dict) -> tuple[str, str]:
    """(what from_pretrained loads the base from, a comment): the Hub id where the weights are the
    Hub's, else the directory the run trained from."""
    base = m["base"]
    hub_id, path, source = base_hub_id(m), base.get("path"), base.get("source")
    if source == "packaged" and isinstance(ALIASES.get(base.get("requested", "")), PackagedGguf):
        return path, f"the base this run trained on: {hub_id} dequantized from domainft's packaged GGUF"
    if hub_id:
        where = f"; domainft's packaged copy: {path}" if source == "packaged" else ""
        return hub_id, f"the base{where}"
    return path, "the base directory this run trained from"


def _dataset(metrics: dict) -> dict:
    run = metrics.get("run", {})
    return run.get("dataset") or {"name": run.get("name") or "data"}


def _ordinal(m: dict) -> bool:
    return bool((m.get("decision") or {}).get("ordinal"))


def _numbers(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _int8_scheme(q: dict) -> str:
    if q.get("mode") == "static":
        return (f"int8 is static: {q['weights']} weights per channel, {q['activations']} activations whose "
                f"ranges were calibrated ({q.get('calibration_method', 'MinMax')}) on "
                f"{q['calibration_examples']} {q.get('calibration_split', 'validation')} examples and are "
                "constants in the graph (QDQ), so a text's int8 scores are the same whatever it is batched "
                "with.")
    return ("int8 is dynamic: each layer's activation scale is computed at run time over the whole batch, "
            "padding included, so a text's int8 scores can change with the texts batched with it; "
            f"domainft.serving runs this model one text at a time (serve {FP32_FILE} to batch).")
