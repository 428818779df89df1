"""The Triton repository's README.md: the client contract, and a client for this model's task
written with tokenizers, numpy and urllib only (the KServe v2 HTTP/JSON protocol Triton speaks),
so that calling the server needs no Triton package. tests/test_triton.py runs it against a
stand-in server that feeds its tensors to ONNX Runtime."""
from __future__ import annotations

COMMON = '''\
import json
import os
import urllib.request

import numpy as np
from tokenizers import Tokenizer

MODEL = "{name}"
HERE = f"{{MODEL}}/1"  # beside model.onnx: the tokenizer and domainft.json it was trained with
URL = os.environ.get("TRITON_URL", "http://localhost:8000") + f"/v2/models/{{MODEL}}/infer"
BATCH = {max_batch_size}  # config.pbtxt max_batch_size: Triton refuses larger requests
PAD_TO = None  # or manifest["max_length"]: equal shapes let the dynamic batcher merge requests
manifest = json.load(open(f"{{HERE}}/domainft.json", encoding="utf-8"))
labels = manifest["labels"]  # logit order; labels.txt holds the same, one a line
tokenizer = Tokenizer.from_file(f"{{HERE}}/tokenizer.json")
tokenizer.no_padding()


def request(rows, type_ids):
    """KServe v2 JSON: int64 tensors [rows, width], padded to the longest row (or PAD_TO)."""
    width = PAD_TO or max(len(r) for r in rows)
    pad = manifest["special_tokens"]["pad"]
    tensors = {{"input_ids": [r + [pad] * (width - len(r)) for r in rows],
               "attention_mask": [[1] * len(r) + [0] * (width - len(r)) for r in rows],
               "token_type_ids": [t + [0] * (width - len(t)) for t in type_ids]}}
    return {{"inputs": [{{"name": n, "datatype": "INT64", "shape": [len(rows), width],
                        "data": [v for row in tensors[n] for v in row]}}  # flat, row-major
                       for n in manifest["inputs"]],  # only those the graph takes
            "outputs": [{{"name": "logits"}}]}}


def infer(body):
    """POST one request; its logits as float32 [rows, ...] (the reply's flat data reshaped)."""
    http = urllib.request.Request(URL, json.dumps(body).encode(), {{"Content-Type": "application/json"}})
    with urllib.request.urlopen(http) as reply:
        out = {{o["name"]: o for o in json.load(reply)["outputs"]}}["logits"]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def logits_of(rows, type_ids):
    """Logits for token-id rows, at most BATCH rows a request; token logits padded to the widest."""
    parts = [infer(request(rows[i:i + BATCH], type_ids[i:i + BATCH])) for i in range(0, len(rows), BATCH)]
    if parts[0].ndim == 3:
        width = max(p.shape[1] for p in parts)
        parts = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in parts]
    return np.concatenate(parts)
'''

# Texts -> one row of logits each, read as in training: truncated (longest first) to max_length, or
# cut into windows sharing `stride` tokens whose logits are pooled (data.long_inputs: windows).
TEXT_LOGITS = '''

inputs = {"long_inputs": "truncate", "window_pooling": "mean", "text_pair": False, **manifest.get("text_inputs", {})}
if inputs["long_inputs"] == "windows":
    tokenizer.enable_truncation(manifest["max_length"], stride=manifest["stride"],
                                strategy="only_second" if inputs["text_pair"] else "longest_first")
else:
    tokenizer.enable_truncation(manifest["max_length"])


def text_logits(texts):
    """texts: strings, or (text, text_pair) tuples for a model trained on pairs."""
    rows, row_of = [], []
    for k, encoding in enumerate(tokenizer.encode_batch(texts)):
        windows = [encoding, *encoding.overflowing] if inputs["long_inputs"] == "windows" else [encoding]
        rows += windows
        row_of += [k] * len(windows)
    logits, row_of = logits_of([w.ids for w in rows], [w.type_ids for w in rows]), np.array(row_of)
    pool = np.max if inputs["window_pooling"] == "max" else np.mean
    return np.stack([pool(logits[row_of == k], axis=0) for k in range(len(texts))])
'''

DECODE = {
    "classification": '''

def predict(texts):
    logits = text_logits(texts)
    z = np.exp(logits - logits.max(-1, keepdims=True))
    probs = z / z.sum(-1, keepdims=True)  # softmax over the labels
    return [{"label": labels[int(p.argmax())], "score": float(p.max()),
             "scores": {label: float(v) for label, v in zip(labels, p)}} for p in probs]
''',
    "multilabel": '''

def predict(texts):
    probs = 1 / (1 + np.exp(-text_logits(texts)))  # sigmoid: each label on its own
    saved = manifest.get("thresholds") or {}
    cut = [float((saved.get("values") or {}).get(label, saved.get("default", 0.5))) for label in labels]
    return [{"labels": [labels[i] for i in np.argsort(-p, kind="stable") if p[i] >= cut[i]],
             "scores": {label: float(v) for label, v in zip(labels, p)}} for p in probs]
''',
    "regression": '''

def predict(texts):
    targets = manifest["targets"]
    values = text_logits(texts).astype(np.float64)
    if targets.get("standardized", True):  # trained on (y - mean) / std
        values = values * np.array(targets["std"]) + np.array(targets["mean"])
    if len(targets["names"]) == 1:
        return [{"value": float(v[0])} for v in values]
    return [{"values": dict(zip(targets["names"], map(float, v)))} for v in values]
''',
    # Word windows: domainft/wordwindows.py and domainft/decode.py are plain Python and numpy (copy
    # them, or install domainft); the parameters are domainft.json's.
    "ner": '''
from domainft.decode import entities
from domainft.wordwindows import merge_windows, window_inputs, words_with_offsets

special = manifest["special_tokens"]
tokenizer.no_truncation()  # each word whole; the windows below keep rows within max_length


def predict(texts):
    """texts: strings (split into words as in training) or lists of words."""
    docs = [words_with_offsets(t) for t in texts]
    budget = manifest["max_length"] - len(special["prefix"]) - len(special["suffix"])
    rows, sentence_of, word_index = [], [], []
    for k, (words, _, _) in enumerate(docs):
        pieces = [e.ids or [special["unk"]] for e in tokenizer.encode_batch(words, add_special_tokens=False)]
        for ids, index in (window_inputs(pieces, budget, manifest["stride"],
                                         lambda body: special["prefix"] + body + special["suffix"],
                                         len(special["prefix"])) if words else []):
            rows.append(ids)
            sentence_of.append(k)
            word_index.append(index)
    logits = logits_of(rows, [[0] * len(r) for r in rows]) if rows else np.zeros((0, 0, len(labels)))
    merged = merge_windows(logits, sentence_of, word_index, n_sentences=len(docs))
    return [entities(words, starts, source, p, labels) for (words, starts, source), p in zip(docs, merged)]
''',
}

EXAMPLES = {"classification": "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn .",
            "multilabel": "The licensee may not assign this agreement without consent .",
            "regression": "Shares rallied after the upbeat guidance .",
            "ner": "Two siblings had ataxia-telangiectasia ."}


def client_code(name: str, task: str, max_batch_size: int, pairs: bool) -> str:
    """The README's client for this model's task (Python, runnable from the repository directory)."""
    code = COMMON.format(name=name, max_batch_size=max_batch_size)
    code += DECODE["ner"] if task == "ner" else TEXT_LOGITS + DECODE[task]
    example = EXAMPLES.get(task, EXAMPLES["classification"])
    shown = f"({example!r}, {example!r})" if pairs else repr(example)
    return code + f"\n\nprint(predict([{shown}]))\n"


def repository_readme(name: str, manifest: dict, spec, precision: str) -> str:
    task, labels = manifest["task"], manifest.get("labels") or []
    text_inputs = manifest.get("text_inputs") or {}
    pairs = bool(text_inputs.get("text_pair"))
    per_text = "[n_labels]" if task != "ner" else "[-1, n_labels] (one row of logits per token)"
    decoding = {
        "classification": "softmax over the last axis; the label is the most probable one",
        "multilabel": "sigmoid per label; a label is chosen when its probability reaches its threshold "
                      "(`domainft.json` `thresholds`: per-label `values`, else `default`, else 0.5)",
        "regression": "the outputs are standardized targets: value = output x std + mean "
                      "(`domainft.json` `targets`, one column per name)",
        "ner": "softmax per token; each word takes the label of its first subword in the window where it sits "
               "furthest from an edge; IOB2 tags are joined into entities",
    }[task]
    decision = manifest.get("decision") or {}
    rule = ("\n- **Decision rule**: this model picks labels by escalation (`domainft.json` `decision`, "
            f"threshold {decision['escalate_threshold']}): the most severe label whose cumulative probability "
            "(it and every more severe label, in label order) reaches the threshold, never less severe than the "
            "most probable label (`domainft.ordinal.escalate`); the client below shows plain argmax."
            if decision.get("escalate_threshold") is not None else "")
    windows = (f"cut into windows of {manifest['max_length']} tokens sharing {manifest['stride']} "
               f"(`text_inputs`), whose logits are pooled ({text_inputs.get('window_pooling', 'mean')})"
               if text_inputs.get("long_inputs") == "windows" else
               f"truncated longest-first to the trained max_length, {manifest['max_length']} tokens "
               "(special tokens included)")
    tokens = (f"words (split as in training: runs of letters/digits, every other non-space character alone) "
              f"are tokenized one by one, without special tokens; they are grouped into windows of at most "
              f"{manifest['max_length']} tokens (prefix {manifest['special_tokens']['prefix']} + subwords + suffix "
              f"{manifest['special_tokens']['suffix']}) cut at word boundaries, neighbours sharing about "
              f"{manifest['stride']} subwords (`max_length`, `stride`, `special_tokens` in `domainft.json`); "
              "a word longer than a window is cut" if task == "ner" else windows)
    padding_rows = "; rows beyond a row's length are padding" if task == "ner" else ""
    helpers = ("NER needs `domainft/wordwindows.py` and `domainft/decode.py` (plain Python and numpy: install "
               "domainft, or copy the two files)." if task == "ner" else "")
    return f"""# Triton model repository: {name}

Written by `domainft export --format triton` (domainft {manifest.get('domainft_version', '')}) from a
{task} bundle ({precision} graph). Serve it with the Triton Inference Server:

```
tritonserver --model-repository $PWD
```

`{name}/config.pbtxt` runs `{name}/1/model.onnx` on ONNX Runtime (platform `onnxruntime_onnx`),
{spec.instances} CPU instance(s), dynamic batching up to {spec.max_batch_size} texts (preferred
{", ".join(map(str, spec.preferred()))}, at most {spec.max_queue_delay_us} µs of queueing). Edit
`max_batch_size`, `dynamic_batching` and `instance_group` there, or export again with
`--max-batch-size`, `--preferred-batch-size`, `--max-queue-delay-us`, `--instances`, `--threads`.
One repository holds one model; give `tritonserver` several `--model-repository` folders to
serve several.

## The client contract

Triton runs the graph only: tokenizing and decoding are the client's. `{name}/1/` holds the
tokenizer (`tokenizer.json`) and `domainft.json` (labels, max_length, stride, special tokens,
thresholds) beside the model; clients read them there or from a copy.

- **Inputs**: {", ".join(f"`{n}`" for n in manifest["inputs"])}, each `INT64`, shape
  [batch, tokens]{" (`token_type_ids`: the tokenizer's type ids)" if "token_type_ids" in manifest["inputs"] else ""};
  `attention_mask` is 1 on tokens and 0 on padding.
- **Padding**: pad every request to its longest row with the pad id
  ({manifest['special_tokens']['pad']}); the mask keeps padding out of the results. Triton's dynamic
  batcher merges only requests of equal shape, so clients that pad to a fixed length (`PAD_TO`)
  batch better under load and compute more per request.
- **Length**: {"texts (text pairs)" if pairs else "texts"} are {tokens}.
- **Output**: `logits`, `FP32`, {per_text} per text{padding_rows}.
- **Decoding**: {decoding}.{rule}
- **Labels**: {("in logit order: " + ", ".join(f"`{label}`" for label in labels)
                + " (`" + name + "/labels.txt`, `domainft.json` `labels`)") if labels else "none"}.
- At most {spec.max_batch_size} rows a request (`max_batch_size`).

## A client

Python with `tokenizers` and `numpy`; the request is Triton's KServe v2 HTTP/JSON protocol sent
with `urllib`, so it needs no Triton package (`tritonclient` sends the same tensors). Run it from
this directory, `TRITON_URL` set to the server (default `http://localhost:8000`).
{helpers}

```python
{client_code(name, task, spec.max_batch_size, pairs)}```

It returns what `domainft.serving.load(bundle).predict` returns for the same texts.
"""
