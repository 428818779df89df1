"""`domainft export`: a trained run -> a self-contained ONNX bundle that other apps serve.

The bundle holds onnx/model.onnx (fp32) and onnx/model_quantized.onnx (int8, static by default:
calibrated on the validation set, so a text's scores never depend on its batch; written when it
keeps validation quality), the tokenizer (truncating at the trained max length), config.json with
the labels, a domainft.json manifest and a model card: the Hugging Face layout, so Optimum and
transformers.js load it with their default options. LoRA is merged first (method.to_plain);
adapters stay in the graph. Nothing is written unless the fp32 graph reproduces PyTorch's logits
on the validation set (the parity gate).
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from domainft import __version__
from domainft.atomic import signals_raise, staged_dir
from domainft.card import bundle_card
from domainft.errors import DomainftError
from domainft.model import load
from domainft.parity import MAX_ABS_DIFF, Batches, drop_points, quality
from domainft.prepare import encode_splits, read_data
from domainft.rundir import RunDir, method_from_manifest, read_manifest, reading_run, run_dir_of
from domainft.serving import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    FP32_FILE,
    INT8_FILE,
    MANIFEST,
    TOKENIZER_FILE,
    is_bundle,
    session,
)
from domainft.wordwindows import WORD, special_prefix_length

INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # in this order, those the tokenizer makes
VERSIONS = ("torch", "transformers", "peft", "adapters", "onnx", "onnxruntime", "optimum", "optimum-onnx",
            "tokenizers")


@dataclass
class ExportResult:
    dir: Path
    manifest: dict

    @property
    def int8(self) -> bool:
        return self.manifest["files"]["int8"] is not None


def export_run(run_dir: str | Path, spec=None, out: str | Path | None = None, validation=None,
               echo=print) -> ExportResult:
    """Export a finished run (its directory or model/) as an ONNX bundle.

    spec: an ExportSpec (default: the run's saved recipe's `export:` section); out: the bundle
    directory (default: spec.dir, else RUN_DIR/onnx); validation: the encoded validation set (default:
    re-read through the saved recipe.yaml) on which parity and int8 quality are measured.
    """
    run = run_dir_of(run_dir)
    _refuse_generation(run)
    with reading_run(run.path, "export"):
        return _export(run, spec, out, validation, echo)


def _export(run: RunDir, spec, out, validation, echo) -> ExportResult:
    import torch

    if spec is None or validation is None:
        recipe = run.read_recipe("export")
        spec = spec or recipe.export
    trained = load(run.model_dir)
    if validation is None:
        validation = validation_set(recipe, trained, run)
    if not len(validation):
        raise DomainftError(f"export: {run.path} has no validation examples to check parity on")
    out = Path(out or spec.dir or run.bundle_dir)
    check_bundle_target(out, run)
    plain = method_from_manifest(trained.manifest).to_plain(trained.model).eval()
    names = [n for n in INPUTS if n in trained.tokenizer.model_input_names]
    threads = torch.get_num_threads()

    with signals_raise(), staged_dir(out) as tmp:  # SIGTERM / SIGHUP clean up as Ctrl-C does
        (tmp / FP32_FILE).parent.mkdir()
        to_onnx(plain, trained.tokenizer, names, tmp / FP32_FILE, spec.opset, trained.task.words_as_input)
        plain.config.save_pretrained(tmp)  # labels, and the architecture optimum's ORTModel reads
        trained.tokenizer.save_pretrained(tmp)  # tokenizer.json carries the lexicon's added tokens
        cut_at_trained_length(tmp, trained.manifest["max_length"])
        batches = Batches.of(validation, names, trained.tokenizer.pad_token_id or 0)
        reference = batches.torch_logits(trained.model)
        parity = check_fp32(batches, reference, trained, tmp / FP32_FILE, validation, threads, echo)
        if spec.int8:
            parity["int8"] = check_int8(batches, reference, trained, tmp, validation, spec, parity["pytorch"],
                                        threads, echo)
        manifest = bundle_manifest(trained, run, names, spec, parity, tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        card = bundle_card(manifest, trained.manifest, run.read_metrics())
        (tmp / "README.md").write_text(card, encoding="utf-8")
    files = manifest["files"]
    echo(f"bundle: {out} ({FP32_FILE} {files['fp32']['mb']} MB"
         + (f", {INT8_FILE} {files['int8']['mb']} MB)" if files["int8"] else ")"))
    return ExportResult(out, manifest)


def cut_at_trained_length(bundle: Path, max_length: int) -> None:
    """Make the saved tokenizer files read texts as training did: tokenizer_config.json's
    model_max_length (where transformers, Optimum's pipelines and transformers.js truncate) and
    tokenizer.json's own truncation at the trained max length, no padding. The base's 512 would
    let a client score tokens the model never saw, or overrun its position table."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(bundle / TOKENIZER_FILE))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    tokenizer.save(str(bundle / TOKENIZER_FILE))
    config_path = bundle / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["model_max_length"] = max_length
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def check_bundle_target(out: Path, run: RunDir) -> None:
    """The bundle replaces `out` only if it is empty, absent or an earlier bundle: never the run
    itself, a directory holding it, or anything else a user keeps there."""
    target, run_path = out.resolve(), run.path.resolve()
    if target == run_path or run_path.is_relative_to(target) or target.is_relative_to(run.model_dir.resolve()):
        raise DomainftError(f"export --out: {out} is (or holds) the run {run.path} itself; the bundle would "
                            f"replace it. Give a directory of its own, e.g. {run.bundle_dir}")
    blocked = next((d for d in (out, *out.parents) if d.exists() and not d.is_dir()), None)
    if blocked is not None:
        raise DomainftError(f"export --out: {blocked} is a file; give a directory for the bundle")
    if out.is_dir() and any(out.iterdir()) and not is_bundle(out):
        raise DomainftError(f"export --out: {out} holds files that are not an earlier bundle; only an empty "
                            "directory or an earlier bundle is replaced. Choose another --out")


def _refuse_generation(run: RunDir) -> None:
    if read_manifest(run.model_dir).get("task") == "generation":
        raise DomainftError(f"export: {run.path} is a generation run; the ONNX bundle applies to "
                            f"classification / regression / ner. `domainft merge {run.path}` writes the model "
                            "with its adapter merged into a full-precision copy of the base")


def validation_set(recipe, trained, run: RunDir):
    """The run's validation split, encoded with the saved tokenizer as training encoded it."""
    task = trained.task
    try:
        data = read_data(task, recipe)
        encoded, _ = encode_splits(task, {"validation": data.validation}, trained.tokenizer, trained.labels, recipe)
    except (DomainftError, KeyError) as e:
        raise DomainftError(f"export: the parity gate runs on the run's validation data, which could not "
                            f"be read as {run.recipe_file} says ({e}); run export from the directory "
                            "the run started in, or fix data.* in that recipe.yaml") from None
    return encoded.get("validation", [])


def to_onnx(model, tokenizer, names: list[str], path: Path, opset: int, per_token: bool) -> None:
    """Trace `model` into an ONNX graph with dynamic batch and sequence axes, `logits` out."""
    import torch

    class Logits(torch.nn.Module):  # positional inputs in, one tensor out: what the exporter traces
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs))).logits

    example = tokenizer(["an example to trace the graph with", "padded"], padding=True, return_tensors="pt")
    axes = {n: {0: "batch_size", 1: "sequence_length"} for n in names}
    axes["logits"] = {0: "batch_size", 1: "sequence_length"} if per_token else {0: "batch_size"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: the parity gate checks the result
        torch.onnx.export(Logits().eval(), tuple(example[n] for n in names), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False,
                          do_constant_folding=True)


def check_fp32(batches: Batches, reference, trained, path: Path, validation, threads: int, echo) -> dict:
    """Compare fp32 ONNX logits with PyTorch's (`reference`); refuse the export above MAX_ABS_DIFF."""
    fp32 = batches.onnx_logits(session(path, threads))
    diff = batches.max_abs_diff(reference, fp32)
    echo(f"parity: fp32 ONNX vs PyTorch, max |logit difference| {diff:.2e} on {len(validation)} validation "
         f"examples (limit {MAX_ABS_DIFF:g})")
    if not diff <= MAX_ABS_DIFF:  # also catches NaN
        raise DomainftError(f"export refused: the ONNX graph's logits differ from PyTorch's by up to {diff:.3g} "
                            f"(limit {MAX_ABS_DIFF:g}) on the validation set; nothing was written. Try another "
                            "export.opset, or report the model type and tuning method as a bug")
    labels = trained.labels
    return {"examples": len(validation), "max_abs_diff": diff, "limit": MAX_ABS_DIFF,
            "pytorch": quality(trained.task, reference, validation, labels),
            "fp32": quality(trained.task, fp32, validation, labels)}


def check_int8(batches: Batches, reference_logits, trained, tmp: Path, validation, spec, reference: dict,
               threads: int, echo) -> dict:
    """Quantize, score on the validation set, and keep the file only within spec.max_int8_drop.
    static (spec.int8_mode): the plain graph, activation ranges calibrated on spec.calibration_examples
    validation examples; dynamic: the fused graph, when fusing keeps PyTorch's logits."""
    path = tmp / INT8_FILE
    static = spec.int8_mode == "static"
    with scratch_dir(tmp) as scratch:
        source, fused, options = tmp / FP32_FILE, None, {}
        if static:
            options["calibration"] = Batches.rows(validation, list(batches.feeds[0]), spec.calibration_examples)
        elif spec.fuse:
            fused = fuse_checked(tmp / FP32_FILE, scratch / "fused.onnx", trained.model.config,
                                 batches, reference_logits, threads, echo)
            source = scratch / "fused.onnx" if fused else source
        settings = {**quantize(source, path, spec.quantization, **options), "fused": fused}
    scores = quality(trained.task, batches.onnx_logits(session(path, threads)), validation, trained.labels)
    drop = drop_points(reference, scores)
    shown = ", ".join(f"{k} {reference[k]:.4f} -> {scores[k]:.4f}" for k in scores)
    how = (f"static, {settings['calibration_examples']} calibration examples" if settings["mode"] == "static"
           else "dynamic")
    echo(f"int8 ({how}, {spec.quantization}): {shown}; drop {drop:.2f} points (limit {spec.max_int8_drop:g})")
    info = {"quantization": settings, "metrics": scores, "drop_points": drop,
            "max_drop_points": spec.max_int8_drop, "written": drop <= spec.max_int8_drop, "reason": None}
    if not info["written"]:
        path.unlink()
        info["reason"] = (f"int8 lost {drop:.2f} points of validation {'/'.join(scores)} against PyTorch, more "
                          f"than export.max_int8_drop = {spec.max_int8_drop:g}; serve {FP32_FILE} (fp32), or "
                          "try another export.quantization")
        echo(f"int8 not written: {info['reason']}")
    return info


@contextmanager
def scratch_dir(staging: Path):
    """A scratch directory inside the staging directory, for the fused graph and for the temporary
    files ONNX Runtime's optimizer and quantizer make with `tempfile` (a model copy each): all go
    with it on the way out, and after a SIGKILL they are inside the hidden staging directory, which
    the next export of the bundle removes first, rather than in /tmp."""
    scratch = staging / ".scratch"
    scratch.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(scratch)
    try:
        yield scratch
    finally:
        tempfile.tempdir = saved
        shutil.rmtree(scratch, ignore_errors=True)


# onnxruntime.transformers.optimizer's graph patterns, by config.model_type.
FUSION_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "camembert": "bert",
                "electra": "bert", "distilbert": "bert", "deberta-v2": "bert"}


def fuse(src: Path, dst: Path, config) -> dict | None:
    """Fuse attention, skip-LayerNorm, embedding-LayerNorm and bias-GELU subgraphs into ONNX Runtime's
    contrib operators: fewer, larger kernels, which is most of int8's batch-1 gain on a CPU. Returns
    the fused operator counts, or None for an architecture it has no patterns for (nothing written)."""
    kind = FUSION_TYPES.get(config.model_type)
    if kind is None:
        return None
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(src), model_type=kind, num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=1)  # graph-level fusions only
    optimized.save_model_to_file(str(dst))
    return {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}


def fuse_checked(src: Path, dst: Path, config, batches: Batches, reference, threads: int, echo) -> dict | None:
    """fuse(), kept only if the fused fp32 graph still matches PyTorch's logits (else None: quantize
    the plain graph)."""
    fused = fuse(src, dst, config)
    if not fused:
        return None
    diff = batches.max_abs_diff(reference, batches.onnx_logits(session(dst, threads)))
    if not diff <= MAX_ABS_DIFF:
        echo(f"fusion skipped: the fused graph's logits differ from PyTorch's by {diff:.3g}")
        return None
    return fused


# export.quantization -> (optimum's AutoQuantizationConfig preset, its options).
# "avx2": ONNX Runtime's advice for AVX2 (and AVX-512 without VNNI) CPUs: uint8 activations with int8
# weights (U8S8), whose kernel multiplies with vpmaddubsw, about 1.25x the U8U8 kernel's speed on a
# MiniLM here; the weights keep 7 bits (reduce_range) so its 16-bit pair sums cannot saturate.
# "avx2_u8u8" is optimum's own avx2 preset: 8-bit uint8 weights, the slower U8U8 kernel.
QUANTIZATION_PRESETS = {"avx2": ("avx512", {"reduce_range": True}), "avx2_u8u8": ("avx2", {}),
                        "avx512": ("avx512", {}), "avx512_vnni": ("avx512_vnni", {}), "arm64": ("arm64", {})}


STATIC_OPERATORS = ["MatMul", "Gather"]  # a transformer's weights: its projections and embedding tables


def quantize(src: Path, dst: Path, preset: str, calibration: Batches | None = None) -> dict:
    """int8 quantization with the weight settings of QUANTIZATION_PRESETS[preset]; returns them.

    With `calibration` (input feeds, one example each), static: per-channel int8 weights, uint8
    activations whose ranges (min / max over the calibration examples) are constants in the graph
    (QDQ format; ONNX Runtime runs each MatMul as an integer kernel). A row's result then depends on
    that row only: the same text scores the same whatever it is batched with. Without, dynamic: each
    MatMul quantizes its input with a scale computed over the whole input tensor at run time, that
    is over every row of the batch, padding included, so a text's scores shift with its companions."""
    import onnx
    from onnxruntime.quantization import QuantType
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    optimum_preset, options = QUANTIZATION_PRESETS[preset]
    config = getattr(AutoQuantizationConfig, optimum_preset)(is_static=calibration is not None, **options)
    weights = QuantType.QInt8 if config.weights_dtype.name == "QInt8" else QuantType.QUInt8
    settings = {"preset": preset, "weights": config.weights_dtype.name, "activations": config.activations_dtype.name,
                "per_channel": config.per_channel, "reduce_range": config.reduce_range}
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # its "consider pre-processing" advice: shapes are inferred anyway
    try:
        if calibration is not None:
            return {**settings, **_quantize_static(src, dst, config, weights, calibration)}
        from onnxruntime.quantization import quantize_dynamic

        operators = [getattr(o, "value", o) for o in config.operators_to_quantize]
        # Fused contrib operators have no ONNX shape inference: their outputs are float (DefaultTensorType).
        quantize_dynamic(src, dst, per_channel=config.per_channel, reduce_range=config.reduce_range,
                         weight_type=weights, op_types_to_quantize=operators,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        return {**settings, "mode": "dynamic", "operators": operators}
    finally:
        root.setLevel(level)


class _Feeds:
    """onnxruntime.quantization's CalibrationDataReader over a list of feeds."""

    def __init__(self, feeds: list[dict]):
        self._feeds = iter(feeds)

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


def _quantize_static(src: Path, dst: Path, config, weights, calibration: Batches) -> dict:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    # MatMuls of two activations (attention scores, attention context) stay fp32: they hold no
    # weights, and with fixed ranges their inputs lost a point of validation accuracy on FPB.
    graph = onnx.load(str(src), load_external_data=False).graph
    weights_in = {i.name for i in graph.initializer}
    activations_only = [n.name for n in graph.node if n.op_type == "MatMul" and not set(n.input) & weights_in]
    quantize_static(
        src, dst, _Feeds(calibration.feeds), quant_format=QuantFormat.QDQ, op_types_to_quantize=STATIC_OPERATORS,
        nodes_to_exclude=activations_only, per_channel=True, reduce_range=config.reduce_range,
        activation_type=QuantType.QUInt8, weight_type=weights, calibrate_method=CalibrationMethod.MinMax,
        extra_options={"WeightSymmetric": config.weights_symmetric,
                       "ActivationSymmetric": config.activations_symmetric,
                       # MatMul outputs stay float: ONNX Runtime fuses DequantizeLinear -> MatMul into
                       # MatMulIntegerToFloat (dynamic int8's batch-32 speed here) instead of requantizing.
                       "OpTypesToExcludeOutputQuantization": ["MatMul"]})
    return {"mode": "static", "format": "QDQ", "per_channel": True, "activations": "QUInt8",
            "operators": list(STATIC_OPERATORS), "fp32_matmuls": len(activations_only),
            "calibration_method": "MinMax",
            "calibration_examples": len(calibration.feeds), "calibration_split": "validation"}


def bundle_manifest(trained, run: RunDir, names: list[str], spec, parity: dict, tmp: Path) -> dict:
    tok = trained.tokenizer
    special = tok.build_inputs_with_special_tokens([])
    before = special_prefix_length(tok)
    metrics = run.read_metrics()
    m = trained.manifest
    return {
        "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "domainft_version": __version__,
        "task": m["task"], "labels": m["labels"], "max_length": m["max_length"], "stride": m.get("stride", 32),
        "base": m["base"]["requested"], **({"base_hub_id": _hub_id(m)} if _hub_id(m) else {}),
        "tuning": m["tuning"],
        "lexicon": {**m["lexicon"], "vocab_size": len(tok)} if "lexicon" in m else None,
        "decision": m.get("decision"),  # the run's decision rule (ordinal escalation), applied by serving
        **({"text_inputs": m["text_inputs"]} if "text_inputs" in m else {}),  # text pairs, windows: read as in training
        **({"thresholds": m["thresholds"]} if "thresholds" in m else {}),  # multilabel: per-label decisions
        **({"targets": m["targets"]} if "targets" in m else {}),  # regression: the scaling serving undoes
        "inputs": names, "outputs": ["logits"], "opset": spec.opset,
        "special_tokens": {"prefix": special[:before], "suffix": special[before:],
                           "pad": tok.pad_token_id or 0, "unk": tok.unk_token_id},
        "files": {"fp32": _file(tmp, FP32_FILE), "int8": _file(tmp, INT8_FILE), "tokenizer": TOKENIZER_FILE,
                  "config": "config.json", "card": "README.md"},
        **({"ner_decoding": ner_decoding(m, special[:before], special[before:])} if m["task"] == "ner" else {}),
        "metrics": {split: {k: v for k, v in metrics[split].items() if isinstance(v, (int, float))}
                    for split in ("validation", "test") if split in metrics},
        "parity": parity,
        "versions": _versions(),
    }


def _file(bundle: Path, name: str) -> dict | None:
    """A graph's entry: its path inside the bundle and its size."""
    path = bundle / name
    return {"file": name, "mb": round(path.stat().st_size / 2**20, 2)} if path.is_file() else None


def _hub_id(m: dict) -> str | None:
    from domainft.card import base_hub_id

    return base_hub_id(m)


def ner_decoding(m: dict, prefix: list[int], suffix: list[int]) -> dict:
    """How domainft.serving turns an NER text into entities (wordwindows.py, decode.py), for clients
    that re-implement it: each entry states what the code does."""
    return {
        "words": {"regex": WORD.pattern, "rule": "a text is split into the regex's matches (Python `re`, "
                  "Unicode \\w); a list of words is taken as given, its offsets those of the words joined by "
                  "single spaces"},
        "subwords": {"add_special_tokens": False, "per_word": True, "empty_word": "the unk token",
                     "rule": "each word is encoded alone by tokenizer.json without truncation or special "
                             "tokens; a word that gives no tokens counts as [unk]"},
        "subword_rule": "first",  # a word's logits are its first subword's
        "windows": {"max_length": m["max_length"], "stride": m.get("stride", 32), "prefix": prefix, "suffix": suffix,
                    "budget": m["max_length"] - len(prefix) - len(suffix),
                    "plan": "greedy: from word `start`, take words while their subwords fit the budget (always at "
                            "least one word; a longer word is cut to the budget); if words remain, the next window "
                            "starts by stepping back from the end while the stepped-over words hold at most `stride` "
                            "subwords in all (never back to `start`); it starts at the last word stepped back to (at "
                            "least start + 1) if those shared subwords plus the end word's fit the budget, else at "
                            "the end word",
                    "pick": "each word is read from the window where min(words before it, words after it, inside "
                            "the window) is largest; the first such window on a tie"},
        "scheme": "IOB2",
        "tags": "softmax over the word's logits; its tag is the argmax, its score that probability",
        "spans": "an entity opens at B-X, or at an I-X that does not continue an entity of type X; it continues "
                 "over I-X of the same type and ends before any other tag",
        "entity_score": "the mean of its words' tag probabilities",
        "offsets": "start: the first word's start; end: the last word's start + its length; text: source[start:end]",
    }


def _versions() -> dict:
    found = {}
    for name in VERSIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
