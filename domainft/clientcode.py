"""The exported bundle card's code for clients without domainft: onnxruntime in Python (tokenizers,
onnxruntime and numpy only), Node.js (@huggingface/transformers), and the NER decoding written out.

Each snippet reads inputs as domainft.serving does (the trained max length, windows, int64 inputs,
token_type_ids where the graph takes them, padding per batch) and decodes as decode.py does, so its
answers are domainft's; tests/test_clients.py runs them against bundles and compares.
"""
from __future__ import annotations

import json

from domainft.serving import FP32_FILE, INT8_FILE

NODE_PACKAGE = "@huggingface/transformers"


def windows_of(m: dict) -> bool:
    return (m.get("text_inputs") or {}).get("long_inputs") == "windows"


def pair_of(m: dict) -> bool:
    return bool((m.get("text_inputs") or {}).get("text_pair"))


def client_notes(bundle: dict) -> list[str]:
    """What any client must do to get domainft's answers, as a list for the card."""
    m, n = bundle, bundle["max_length"]
    graph = ", ".join(bundle["inputs"])
    lines = ["What a client must do to get domainft's answers (the code below does it):", "",
             f"- Inputs: {graph}, all int64, batch x tokens; pass token_type_ids whenever the graph lists it "
             "(zeros for a single text, the tokenizer's segment ids for a pair), and the attention mask.",
             "- Pad each batch to its longest row (with the pad id, attention mask 0); the graph takes any length "
             f"up to {n}."]
    if m["task"] == "ner":
        lines.append(f"- Never truncate: words are tokenized one by one and read in windows of {n} tokens (the "
                     "algorithm is below).")
    elif windows_of(m):
        lines.append(f"- Long inputs: this model reads a longer input in windows of {n} tokens sharing "
                     f"{m['stride']} tokens and pools the windows' logits "
                     f"({(m.get('text_inputs') or {}).get('window_pooling', 'mean')}). The tokenizer files "
                     f"truncate at {n} tokens, so a default pipeline (Optimum, transformers.js) reads only the "
                     "first window and gives other answers on longer inputs: use the code below.")
    else:
        lines.append(f"- Truncate at {n} tokens, the length the model was trained and checked at: "
                     f"tokenizer_config.json's model_max_length and tokenizer.json's truncation say {n}, so "
                     "transformers / Optimum pipelines (with truncation=True) and transformers.js do it by default.")
    lines.append("- Outputs: " + _output_rule(m))
    return lines + [""]


def _output_rule(m: dict) -> str:
    task = m["task"]
    if task == "multilabel":
        return ("`logits` [batch, labels]; sigmoid per label, a label is predicted when its probability reaches its "
                "threshold (domainft.json: thresholds).")
    if task == "regression":
        t = m["targets"]
        if not t.get("standardized", True):
            return "`logits` [batch, targets] are the values, in the data's units."
        return "`logits` [batch, targets]; value = logit x std + mean (domainft.json: targets)."
    if task == "ner":
        return "`logits` [batch, tokens, tags]; softmax per token; tags from config.json id2label (IOB2)."
    rule = "softmax over the labels, the label of the largest probability"
    if (m.get("decision") or {}).get("escalate_threshold") is not None:
        rule += ", escalated by the run's decision rule (domainft.json: decision)"
    return f"`logits` [batch, labels]; {rule}; names from config.json id2label."


# --- Python: tokenizers + onnxruntime + numpy --------------------------------------------------

def onnxruntime_snippet(bundle: dict, score_lines: list[str]) -> list[str]:
    """Text tasks: tokenize with tokenizer.json, run the graph, decode (score_lines, card.py's)."""
    n, stride = bundle["max_length"], bundle["stride"]
    pad = bundle["special_tokens"]["pad"]
    lines = ["import json", "", "import numpy as np", "import onnxruntime", "from tokenizers import Tokenizer", "",
             'model_dir = "."  # this directory',
             f'tokenizer = Tokenizer.from_file(f"{{model_dir}}/tokenizer.json")  # truncates at {n} tokens']
    if windows_of(bundle):
        strategy = "only_second" if pair_of(bundle) else "longest_first"
        lines.append(f'tokenizer.enable_truncation({n}, stride={stride}, strategy="{strategy}")  '
                     f"# windows sharing {stride} tokens, as training read long inputs")
    lines += [_session_line(bundle),
              'with open(f"{model_dir}/config.json", encoding="utf-8") as f:',
              '    id2label = {int(k): v for k, v in json.load(f)["id2label"].items()}',
              "names = [i.name for i in session.get_inputs()]  # token_type_ids only where the graph takes it",
              "", 'texts = ["Your text here."]']
    if pair_of(bundle):
        lines += ['pairs = ["The second text of each pair."]',
                  "encodings = tokenizer.encode_batch(list(zip(texts, pairs)))"]
    else:
        lines.append("encodings = tokenizer.encode_batch(texts)")
    if windows_of(bundle):
        lines += ["rows = [w for e in encodings for w in [e, *e.overflowing]]  # every window of every text",
                  "rows_of = np.array([k for k, e in enumerate(encodings) for _ in range(1 + len(e.overflowing))])"]
    else:
        lines.append("rows = encodings")
    lines += ["width = max(len(e.ids) for e in rows)  # pad per batch, to its longest row", "",
              "", "def column(values, pad):",
              "    return np.array([v + [pad] * (width - len(v)) for v in values], dtype=np.int64)  # int64 inputs",
              "", "",
              f"feed = {{\"input_ids\": column([e.ids for e in rows], {pad}),",
              '        "attention_mask": column([e.attention_mask for e in rows], 0),',
              '        "token_type_ids": column([e.type_ids for e in rows], 0)}',
              'logits = session.run(["logits"], {k: feed[k] for k in names})[0]']
    if windows_of(bundle):
        how = (bundle.get("text_inputs") or {}).get("window_pooling", "mean")
        lines.append(f"logits = np.stack([logits[rows_of == i].{how}(0) for i in range(len(texts))])  "
                     f"# windows pooled per text ({how})")
    return lines + score_lines


def _session_line(bundle: dict) -> str:
    note = ""
    if bundle["files"].get("int8"):
        note = f"  # int8: {INT8_FILE}"
        q = ((bundle["parity"].get("int8") or {}).get("quantization") or {})
        if q.get("mode") != "static":
            note += " (dynamic: run one text at a time for batch-independent scores)"
    return f'session = onnxruntime.InferenceSession(f"{{model_dir}}/{FP32_FILE}"){note}'


def ner_snippet(bundle: dict) -> list[str]:
    """NER as domainft.serving does it, from domainft.json's ner_decoding only."""
    return ["import json", "import re", "", "import numpy as np", "import onnxruntime",
            "from tokenizers import Tokenizer", "",
            'model_dir = "."  # this directory',
            'with open(f"{model_dir}/domainft.json", encoding="utf-8") as f:',
            "    manifest = json.load(f)",
            'rule, labels = manifest["ner_decoding"], manifest["labels"]',
            'win, special = rule["windows"], manifest["special_tokens"]',
            'tokenizer = Tokenizer.from_file(f"{model_dir}/tokenizer.json")',
            "tokenizer.no_truncation()  # each word whole: the windows below keep every input within max_length",
            _session_line(bundle),
            "names = [i.name for i in session.get_inputs()]",
            "", "",
            "def plan(lengths, budget, stride):",
            '    """[(first_word, end_word)] windows over the words\' subword counts (ner_decoding.windows.plan)."""',
            "    windows, start, n = [], 0, len(lengths)",
            "    while True:",
            "        end, used = start, 0",
            "        while end < n and (used + lengths[end] <= budget or end == start):",
            "            used, end = used + lengths[end], end + 1",
            "        windows.append((start, end))",
            "        if end >= n:",
            "            return windows",
            "        nxt, shared = end, 0",
            "        while nxt - 1 > start and shared + lengths[nxt - 1] <= stride:",
            "            nxt -= 1",
            "            shared += lengths[nxt]",
            "        start = max(nxt, start + 1) if shared + lengths[end] <= budget else end",
            "", "",
            "def predict(text):",
            '    found = list(re.finditer(rule["words"]["regex"], text))',
            "    words, starts = [m.group() for m in found], [m.start() for m in found]",
            "    if not words:",
            '        return {"entities": [], "words": [], "tags": []}',
            '    pieces = [e.ids or [special["unk"]] for e in tokenizer.encode_batch(words, add_special_tokens=False)]',
            '    windows = plan([len(p) for p in pieces], win["budget"], win["stride"])',
            '    bodies = [[t for p in pieces[a:b] for t in p[:win["budget"]]] for a, b in windows]',
            '    rows = [win["prefix"] + body + win["suffix"] for body in bodies]',
            "    width = max(len(r) for r in rows)  # pad per batch, int64 inputs",
            '    ids = np.array([r + [special["pad"]] * (width - len(r)) for r in rows], dtype=np.int64)',
            "    mask = np.array([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=np.int64)",
            '    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}',
            '    logits = session.run(["logits"], {k: feed[k] for k in names})[0]',
            "    word_logits, context = np.zeros((len(words), len(labels)), dtype=np.float32), [-1] * len(words)",
            "    for w, (a, b) in enumerate(windows):",
            '        position = len(win["prefix"])',
            "        for i in range(a, b):  # its first subword's logits, from the window where it has most context",
            "            if min(i - a, b - 1 - i) > context[i]:",
            "                word_logits[i], context[i] = logits[w, position], min(i - a, b - 1 - i)",
            '            position += len(pieces[i][:win["budget"]])',
            "    probs = np.exp(word_logits - word_logits.max(-1, keepdims=True))",
            "    probs /= probs.sum(-1, keepdims=True)",
            "    tags, scores = [labels[i] for i in probs.argmax(-1)], probs.max(-1)",
            "    entities, current = [], None",
            '    for i, tag in enumerate(tags + ["O"]):  # IOB2 spans; an I-X that opens an entity starts one',
            '        prefix, _, kind = tag.partition("-")',
            '        if current and (prefix != "I" or kind != current[0]):',
            "            etype, a, b = current[0], current[1], i",
            "            start, end = starts[a], starts[b - 1] + len(words[b - 1])",
            '            entities.append({"type": etype, "start": start, "end": end, "text": text[start:end],',
            '                             "score": float(np.mean(scores[a:b]))})',
            "            current = None",
            '        if prefix in ("B", "I") and current is None:',
            "            current = (kind, i)",
            '    return {"entities": entities, "words": words, "tags": tags}',
            "", "",
            'texts = ["Your text here."]',
            "results = [predict(t) for t in texts]"]


def ner_algorithm(bundle: dict) -> list[str]:
    """The decoding in words, for a client in another language (domainft.json: ner_decoding)."""
    d = bundle["ner_decoding"]
    w = d["windows"]
    return ["How domainft reads a text (domainft.json `ner_decoding` has the same, the code above follows it):", "",
            f"1. Words: the matches of the regex `{d['words']['regex']}` (Python `re`, Unicode `\\w`), each with its "
            "character offset; a list of words is taken as given.",
            "2. Subwords: each word is tokenized alone by tokenizer.json, without special tokens or truncation; a "
            f"word that gives no tokens counts as the unk id {bundle['special_tokens']['unk']}. A word is tagged by "
            "its first subword's logits.",
            f"3. Windows: at most {w['budget']} subwords per window (max_length {w['max_length']} less the "
            f"{len(w['prefix'])} + {len(w['suffix'])} special tokens {w['prefix']} / {w['suffix']}), cut at word "
            f"boundaries, neighbours sharing about {w['stride']} subwords: {w['plan']}. A word is read from the "
            f"window where {w['pick'].removeprefix('each word is read from the window where ')}.",
            f"4. Tags: {d['tags']}; scheme {d['scheme']}: {d['spans']}.",
            f"5. Entities: score {d['entity_score']}; {d['offsets']}.", "",
            "Optimum's token-classification pipeline does not window: `aggregation_strategy=\"first\"` (a word's "
            "first subword, as here) gives domainft's entities on texts within one window, and truncates or fails "
            "beyond; \"simple\" merges subwords by their own tags and differs more often. It also splits words its "
            "own way (the tokenizer's pre-tokenizer), so punctuation inside words can differ.", ""]


# --- Node.js: @huggingface/transformers ---------------------------------------------------------

def node_snippet(bundle: dict) -> list[str] | None:
    """JavaScript for Node, or None where a snippet would not give domainft's answers (NER windows,
    long-input windows, text pairs)."""
    task = bundle["task"]
    if task == "ner" or windows_of(bundle) or pair_of(bundle):
        return None
    head = ["// npm install @huggingface/transformers   (it brings onnxruntime-node); run from this directory",
            'import { env } from "@huggingface/transformers";', 'import path from "node:path";', "",
            'const bundle = path.resolve(".");  // this directory',
            "env.allowRemoteModels = false;  // local files only",
            "env.localModelPath = path.dirname(bundle);  // model ids are directories under it",
            "const modelId = path.basename(bundle);  // finds onnx/model.onnx, onnx/model_quantized.onnx by default"]
    dtype = ('const dtype = "fp32";  // "q8": onnx/model_quantized.onnx (int8)' if bundle["files"].get("int8")
             else 'const dtype = "fp32";')
    n, special = bundle["max_length"], bundle["special_tokens"]
    body = n - len(special["prefix"]) - len(special["suffix"])
    return [head[0], "import { AutoModelForSequenceClassification, AutoTokenizer, Tensor, env } from "
            '"@huggingface/transformers";', *head[2:], dtype, "",
            "const tokenizer = await AutoTokenizer.from_pretrained(modelId);",
            "const model = await AutoModelForSequenceClassification.from_pretrained(modelId, { dtype });",
            'const texts = ["Your text here."];',
            f"// Truncated as domainft does: the text's tokens cut at {body}, then the special tokens. (The "
            "tokenizer's own",
            "// truncation: true, and so pipeline(), cut after adding them: a longer text would lose its last "
            "one.)",
            f"const [prefix, suffix, pad] = [{json.dumps(special['prefix'])}, {json.dumps(special['suffix'])}, "
            f"{special['pad']}];",
            "const rows = texts.map((t) => [...prefix, ...tokenizer.encode(t, { add_special_tokens: false })"
            f".slice(0, {body}), ...suffix]);",
            "const width = Math.max(...rows.map((r) => r.length));  // pad per batch",
            "const column = (f) => new Tensor(\"int64\", BigInt64Array.from(rows.flatMap((r) =>",
            "  Array.from({ length: width }, (_, j) => BigInt(f(r, j))))), [rows.length, width]);  // int64 inputs",
            "const { logits } = await model({ input_ids: column((r, j) => (j < r.length ? r[j] : pad)),",
            "  attention_mask: column((r, j) => (j < r.length ? 1 : 0)), token_type_ids: column(() => 0) });",
            "const outputs = logits.tolist();",
            *_node_scores(bundle),
            "console.log(JSON.stringify(predictions));"]


def _node_scores(bundle: dict) -> list[str]:
    task, labels = bundle["task"], bundle["labels"]
    if task == "regression":
        t = bundle["targets"]
        mean = t["mean"] if t.get("standardized", True) else [0.0] * len(t["names"])
        std = t["std"] if t.get("standardized", True) else [1.0] * len(t["names"])
        names = json.dumps(t["names"])
        return [f"const [mean, std, names] = [{json.dumps(mean)}, {json.dumps(std)}, {names}];  "
                "// domainft.json: targets",
                "const values = outputs.map((row) => row.map((x, j) => x * std[j] + mean[j]));",
                "const predictions = values.map((v) => (names.length === 1 ? { value: v[0] }",
                "  : { values: Object.fromEntries(names.map((n, j) => [n, v[j]])) }));"]
    if task == "multilabel":
        from domainft.decode import label_thresholds

        thresholds = [float(x) for x in label_thresholds(bundle, labels)]
        return [f"const labels = {json.dumps(labels)};",
                f"const thresholds = {json.dumps(thresholds)};  // per label, domainft.json: thresholds",
                "const predictions = outputs.map((row) => {",
                "  const probs = row.map((x) => 1 / (1 + Math.exp(-x)));  // sigmoid per label",
                "  const chosen = probs.map((p, i) => i).filter((i) => probs[i] >= thresholds[i])",
                "    .sort((a, b) => probs[b] - probs[a] || a - b);  // most probable first",
                "  return { labels: chosen.map((i) => labels[i]),",
                "    scores: Object.fromEntries(labels.map((l, i) => [l, probs[i]])) };",
                "});"]
    threshold = (bundle.get("decision") or {}).get("escalate_threshold")
    return [f"const labels = {json.dumps(labels)};",
            "const predictions = outputs.map((row) => {",
            "  const top = Math.max(...row);",
            "  const exps = row.map((x) => Math.exp(x - top));",
            "  const total = exps.reduce((a, b) => a + b, 0);",
            "  const probs = exps.map((e) => e / total);  // softmax",
            "  let best = probs.indexOf(Math.max(...probs));",
            *([] if threshold is None else [
                "  // the run's decision rule: the most severe label whose probability with every more severe "
                f"one's reaches {threshold!r}", "  let sum = 0;",
                f"  const reach = probs.findIndex((p) => (sum += p) >= {threshold!r});",
                "  best = Math.min(best, reach < 0 ? probs.length - 1 : reach);"]),
            "  return { label: labels[best], score: probs[best],",
            "    scores: Object.fromEntries(labels.map((l, i) => [l, probs[i]])) };",
            "});"]
