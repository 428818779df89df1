"""The plug-in contract every registered task x tuning method meets (as PEFT's PeftCommonTester
runs one set of checks over every config): train on a tiny model, save, reload to the same
outputs, flatten for export to the same outputs, and, where the task exports, an ONNX bundle that
reproduces PyTorch. The lists come from the registries: a method or task registered in a test (or
by a user's --code file) gets the same checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from domainft import load, run
from domainft.export import export_run
from domainft.methods import METHODS
from domainft.recipe import Recipe
from domainft.serving import load as load_bundle
from domainft.tasks import TASKS

from compare import assert_reloaded_same

ROOT = Path(__file__).resolve().parent.parent
TEXTS = {"classification": ["Kallio Group said its net sales rose to EUR 80.1 mn from EUR 60.2 mn .",
                            "Tundra Mining will cut 300 jobs as demand weakens ."],
         "multilabel": ["Under section 4.2 , the Supplier shall pay each invoice within 30 days .",
                        "Under section 9.1 , the term ends after 12 months and no party may disclose the terms ."],
         "regression": ["Kallio Group: Kallio Group posts record quarterly profit",
                        "Tundra Mining: Tundra Mining shares fall after profit warning"],
         "ner": ["Patients with cystic fibrosis and breast cancer were enrolled .",
                 "No history of ataxia - telangiectasia in the family ."],
         "generation": ["Clause 7: the supplier shall pay the fees. Who bears the duty?"]}
PARTIES = ["supplier", "customer", "licensor", "licensee"]
DUTIES = ["pay the fees", "insure the goods", "notify the other party", "keep records"]
# Per built-in task: its sample data and training settings on the tiny bases (conftest.py).
SAMPLES = {
    "classification": {"data": {"format": "phrasebank", "path": str(ROOT / "data" / "finance_sentiment_sample.txt"),
                                "max_length": 64},
                       "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7}},
    # data/clause_tags_sample.jsonl: 240 contract sentences, 0-3 of 4 tags each (scripts/make_multilabel_sample.py).
    "multilabel": {"data": {"path": str(ROOT / "data" / "clause_tags_sample.jsonl"), "label_column": "labels",
                            "max_length": 48},
                   "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7}},
    "regression": {"data": {"path": str(ROOT / "data" / "finance_sentiment_scores_sample.jsonl"),
                            "text_template": "{company}: {title}", "label_column": "sentiment", "max_length": 64},
                   "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7}},
    "ner": {"data": {"format": "conll", "path": str(ROOT / "data" / "medical_ner"), "max_length": 32, "stride": 8},
            "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "seed": 3}},
    # Short instruction pairs the tiny decoder's 320-token vocabulary keeps short (written per run).
    "generation": {"data": {"path": None, "max_length": 128},
                   "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "lr": 5e-3, "seed": 7},
                   "generation": {"max_new_tokens": 4, "score_responses": "never"}},
}


def methods_for(task: str) -> list[str]:
    """The registered methods that apply to `task` (TuningMethod.tasks)."""
    return [name for name, cls in METHODS.items() if cls.tasks is None or task in cls.tasks]


def pairs() -> list[tuple[str, str]]:
    """Every (task, method) of the registries that fits, for the tasks with sample data."""
    return [(task, method) for task, _ in TASKS.items() if sample_of(task) for method in methods_for(task)]


def sample_of(task: str) -> str | None:
    """The built-in task whose sample data `task` reads (itself, or the built-in it extends)."""
    builtin = {type(t): name for name, t in TASKS.items() if name in SAMPLES}
    return next((builtin[k] for k in type(TASKS.get(task)).__mro__ if k in builtin), None)


def recipe(task: str, method: str, base: Path, out: Path, **sections) -> Recipe:
    sample = sample_of(task)
    raw = {"name": "contract", "task": task, "base": str(base), "tuning": {"method": method},
           "output": {"dir": str(out)}, **SAMPLES[sample], **sections}
    if sample == "generation":
        raw["data"] = {**raw["data"], "path": str(write_pairs(out.parent / "pairs.jsonl"))}
    return Recipe.from_dict(raw)


def write_pairs(path: Path, n: int = 48, **extra) -> Path:
    """`n` short instruction pairs (who bears a clause's duty), `extra` keys added to each row."""
    import json

    rows = [{"prompt": f"Clause {i}: the {PARTIES[i % 4]} shall {DUTIES[i // 4 % 4]}. Who bears the duty?",
             "response": PARTIES[i % 4], **extra} for i in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def quiet_run(r: Recipe):
    return run(r, progress=False, echo=lambda *a: None)


def check(result, tmp_path: Path) -> None:
    """The contract on a finished run: reload exactly, flatten exactly, export exactly."""
    task = sample_of(result.recipe.task)
    texts = TEXTS[task]
    info = result.metrics["run"]
    assert 0 < info["trainable_params"] <= info["total_params"] and info["saved_mb"] > 0
    assert {"validation", "test"} <= set(result.metrics)

    reloaded = load(result.run_dir)
    batch = reloaded.tokenizer(texts, padding=True, return_tensors="pt")
    before = _logits(result.model.model, batch)
    method = METHODS.get(result.recipe.tuning.method)(result.recipe.tuning)
    if "quantization_config" in method.load_kwargs():
        # A 4-bit base: the model trained in memory and a reload differ in the last digits (up to
        # 1.7e-3 in a logit on the tiny decoder; bitsandbytes packs the weights it trained with
        # for its CPU kernels, which a fresh load has not done). Two reloads agree exactly, and the
        # greedy text below is the same.
        np.testing.assert_allclose(_logits(load(result.run_dir).model, batch), _logits(reloaded.model, batch), atol=0)
        np.testing.assert_allclose(_logits(reloaded.model, batch), before, atol=5e-3)
    else:
        np.testing.assert_allclose(_logits(reloaded.model, batch), before, atol=1e-5)
    if task == "generation":
        assert reloaded.generate(texts, max_new_tokens=4) == result.model.generate(texts, max_new_tokens=4)
    else:
        assert_reloaded_same(reloaded.predict(texts), result.model.predict(texts))

    if method.name != "qlora":  # qlora flattens into the full-precision base: close, not equal (merge.py)
        plain = method.to_plain(reloaded.model).eval()
        np.testing.assert_allclose(_logits(plain, batch), before, atol=1e-4)
        np.testing.assert_allclose(_logits(reloaded.model, batch), before, atol=1e-5)  # left untouched

    if "export.enabled" in TASKS.get(result.recipe.task).fields:
        bundle = export_run(result.run_dir, out=tmp_path / "bundle", echo=lambda *a: None)
        assert bundle.manifest["parity"]["max_abs_diff"] <= 1e-4
        onnx_model = load_bundle(bundle.dir, "fp32")
        if task == "ner":
            assert [p["tags"] for p in onnx_model.predict(texts)] == [p["tags"] for p in reloaded.predict(texts)]
        else:
            np.testing.assert_allclose(onnx_model.logits(texts), reloaded.logits(texts), atol=1e-4)


def _logits(model, batch) -> np.ndarray:
    model.eval()
    inputs = {k: v.to(model.device) for k, v in batch.items() if k != "token_type_ids" or _takes_segments(model)}
    with torch.inference_mode():
        return model(**inputs).logits.float().cpu().numpy()


def _takes_segments(model) -> bool:
    return getattr(getattr(model, "config", None), "type_vocab_size", 0) > 0
