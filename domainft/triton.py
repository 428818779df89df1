"""`domainft export --format triton`: a bundle -> a Triton Inference Server model repository.

One machine's Predictor stops scaling at its cores; Triton adds what a fleet needs: dynamic
batching of concurrent requests, several model instances per machine, a standard model repository
that its load balancers, metrics and model control understand. The repository is:

    DIR/README.md               the client contract and a client that needs no Triton package
    DIR/domainft-triton.json    what domainft wrote here (so a later export may replace it)
    DIR/NAME/config.pbtxt       platform onnxruntime_onnx, int64 inputs, dynamic batching, CPU instances
    DIR/NAME/labels.txt         label order (classification's label_filename)
    DIR/NAME/1/model.onnx       the bundle's int8 graph (when it passed the export gate) or fp32
    DIR/NAME/1/...              tokenizer files and domainft.json: tokenization is the client's

Tokenization stays in the client: Triton's ONNX Runtime backend takes tensors, and the bundle's
tokenizer, max_length and window settings travel beside the model so every client reads them.
"""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from domainft import __version__
from domainft.atomic import staged_dir
from domainft.errors import DomainftError
from domainft.serving import FP32_FILE, INT8_FILE, MANIFEST, TOKENIZER_FILE, int8_mode, is_bundle

REPOSITORY_FORMAT = "domainft-triton"
MARKER = "domainft-triton.json"
VERSION = "1"  # Triton serves numbered version folders; a fresh repository holds one
MODEL_FILE = "model.onnx"  # the ONNX Runtime backend's default_model_filename
LABELS_FILE = "labels.txt"
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# Triton's names for ONNX element types (onnx.TensorProto values).
DATA_TYPES = {1: "TYPE_FP32", 6: "TYPE_INT32", 7: "TYPE_INT64", 10: "TYPE_FP16", 11: "TYPE_FP64", 16: "TYPE_BF16"}


@dataclass
class TritonSpec:
    """config.pbtxt's serving settings. preferred_batch_sizes: default 8, 16, 32 ... up to
    max_batch_size; threads: ONNX Runtime's intra-op threads per instance (0: its default, all cores)."""

    max_batch_size: int = 32
    preferred_batch_sizes: list[int] = field(default_factory=list)
    max_queue_delay_us: int = 1000
    instances: int = 1
    threads: int = 0

    def check(self) -> TritonSpec:
        if not 1 <= self.max_batch_size <= 4096:
            raise DomainftError(f"export --max-batch-size: {self.max_batch_size} is not between 1 and 4096")
        bad = [b for b in self.preferred_batch_sizes if not 1 <= b <= self.max_batch_size]
        if bad:
            raise DomainftError(f"export --preferred-batch-size: {bad[0]} is not between 1 and --max-batch-size "
                                f"{self.max_batch_size}")
        for option, value, low in (("--max-queue-delay-us", self.max_queue_delay_us, 0),
                                   ("--instances", self.instances, 1), ("--threads", self.threads, 0)):
            if value < low:
                raise DomainftError(f"export {option}: {value} is below {low}")
        return self

    def preferred(self) -> list[int]:
        if self.preferred_batch_sizes:
            return sorted(set(self.preferred_batch_sizes))
        sizes, size = [], 8  # powers of two: the batch shapes CPU kernels are tuned and measured on
        while size <= self.max_batch_size:
            sizes.append(size)
            size *= 2
        return sizes or [self.max_batch_size]


@dataclass
class TritonResult:
    dir: Path
    name: str
    precision: str
    bundle: Path


def export_triton(source: str | Path, spec: TritonSpec | None = None, out: str | Path | None = None,
                  name: str | None = None, precision: Literal["auto", "fp32", "int8"] = "auto",
                  export_spec=None, echo=print) -> TritonResult:
    """Write a Triton model repository for a bundle, or for a run (exporting its bundle first
    when RUN_DIR/onnx holds none; export_spec: that export's settings, default the run's recipe).
    out: default `triton` beside the bundle (RUN_DIR/triton for a run's own bundle)."""
    spec = (spec or TritonSpec()).check()
    source = Path(source)
    run = None if is_bundle(source) else _run_of(source)
    bundle = source if run is None else _bundle_of(run, export_spec, echo)
    name = model_name(name, source, run)
    out = Path(out) if out is not None else (run.path if run else bundle.parent) / "triton"
    check_repository_target(out, bundle, run)
    manifest = json.loads((bundle / MANIFEST).read_text(encoding="utf-8"))
    chosen, precision = model_file(bundle, manifest, precision)
    graph = graph_signature(bundle / chosen, manifest)
    with staged_dir(out) as tmp:
        version = tmp / name / VERSION
        version.mkdir(parents=True)
        shutil.copyfile(bundle / chosen, version / MODEL_FILE)
        copy_client_files(bundle, manifest, version)
        labelled = _write_labels(tmp / name, manifest)
        (tmp / name / "config.pbtxt").write_text(config_text(name, graph, spec, labelled), encoding="utf-8")
        from domainft.triton_readme import repository_readme

        (tmp / "README.md").write_text(repository_readme(name, manifest, spec, precision), encoding="utf-8")
        _write_marker(tmp, name, precision, bundle, chosen)
    echo(f"triton: {out} (model {name}, {precision} {chosen} -> {name}/{VERSION}/{MODEL_FILE}; "
         f"serve with: tritonserver --model-repository {out})")
    return TritonResult(out, name, precision, bundle)


def _run_of(source: Path):
    from domainft.rundir import run_dir_of

    try:
        return run_dir_of(source)
    except DomainftError as e:
        raise DomainftError(f"export --format triton: {source} is neither an exported bundle (no {FP32_FILE} and "
                            f"{MANIFEST}) nor a run: {e}") from None


def _bundle_of(run, export_spec, echo) -> Path:
    """The run's bundle: the one in RUN_DIR/onnx if there is one, else exported now."""
    if is_bundle(run.bundle_dir):
        echo(f"bundle: using {run.bundle_dir} (`domainft export {run.path}` first to refresh it)")
        return run.bundle_dir
    from domainft.export import export_run

    return export_run(run.path, export_spec, echo=echo).dir


def model_name(name: str | None, source: Path, run) -> str:
    """--name, else the run's directory name (a bundle's: its own, or its run's for RUN_DIR/onnx)."""
    if name is not None:
        if not NAME.fullmatch(name):
            raise DomainftError(f"export --name: {name!r} is not a Triton model name; use letters, digits, "
                                "'_', '.' and '-' (no '/'), e.g. finance_sentiment")
        return name
    path = (run.path if run else source).resolve()
    if run is None and (path.parent / "model").is_dir():  # RUN_DIR/onnx: name it after the run
        path = path.parent
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.name).lstrip(".-") or "model"


def check_repository_target(out: Path, bundle: Path, run) -> None:
    """The repository replaces `out` only if it is absent, empty or an earlier repository that
    domainft wrote and nobody added to: never the bundle, the run, or files a user keeps there."""
    target = out.resolve()
    # Inside the run is fine (RUN_DIR/triton, beside RUN_DIR/onnx), inside its model or bundle is not.
    kept = [(bundle.resolve(), True)] + ([(run.path.resolve(), False), (run.model_dir.resolve(), True)] if run else [])
    for path, whole in kept:
        if target == path or path.is_relative_to(target) or (whole and target.is_relative_to(path)):
            raise DomainftError(f"export --out: {out} is, holds or is inside {path}, which the repository must "
                                f"not replace or change; give a directory of its own, e.g. {path.parent / 'triton'}")
    blocked = next((d for d in (out, *out.parents) if d.exists() and not d.is_dir()), None)
    if blocked is not None:
        raise DomainftError(f"export --out: {blocked} is a file; give a directory for the Triton repository")
    if out.is_dir() and any(out.iterdir()):
        foreign = foreign_files(out)
        if foreign:
            raise DomainftError(f"export --out: {out} holds files domainft did not write as a Triton repository "
                                f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); only an "
                                "empty directory or an earlier `--format triton` repository is replaced. Choose "
                                "another --out")


def foreign_files(out: Path) -> list[str]:
    """Files under `out` that its marker does not list (all of them when it has no valid marker)."""
    present = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
        written = set(marker["files"]) if marker.get("format") == REPOSITORY_FORMAT else set()
    except (OSError, ValueError, KeyError, TypeError):
        written = set()
    return [p for p in present if p not in written]


def model_file(bundle: Path, manifest: dict, precision: str) -> tuple[str, str]:
    """(the bundle file to serve, 'int8' or 'fp32'). auto: int8 when it passed the export gate and is
    static; dynamic int8 scales each batch by its own range, so under Triton, which batches
    strangers' requests together, a text's scores would depend on them: fp32 then."""
    files = manifest.get("files") or {}
    fp32 = (files.get("fp32") or {}).get("file", FP32_FILE)
    int8 = (files.get("int8") or {}).get("file")
    has_int8 = int8 is not None and (bundle / int8).is_file()
    if precision == "int8" and not has_int8:
        reason = ((manifest.get("parity") or {}).get("int8") or {}).get("reason") or "it was not exported"
        raise DomainftError(f"export --int8: {bundle} has no {INT8_FILE} ({reason}); use --no-int8 for fp32")
    if precision == "int8" or (precision == "auto" and has_int8 and int8_mode(manifest) == "static"):
        return int8, "int8"
    if precision not in ("auto", "fp32"):
        raise DomainftError(f"export: precision {precision!r} is not auto, fp32 or int8")
    return fp32, "fp32"


def graph_signature(path: Path, manifest: dict) -> dict:
    """{'inputs': [(name, type, dims)], 'outputs': [...]} from the ONNX graph itself, the batch
    axis dropped (Triton adds it back from max_batch_size); unknown sizes are -1."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    signature = {}
    for kind, values in (("inputs", [v for v in graph.input if v.name not in weights]), ("outputs", graph.output)):
        signature[kind] = [_tensor(v, path) for v in values]
    names = [n for n, _, _ in signature["inputs"]]
    if names != [n for n in manifest["inputs"] if n in names]:
        raise DomainftError(f"export --format triton: {path} takes {names}, its {MANIFEST} lists "
                            f"{manifest['inputs']}; export the bundle again")
    return signature


def _tensor(value, path: Path) -> tuple[str, str, list[int]]:
    tensor = value.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    if not dims or dims[0] != -1:
        raise DomainftError(f"export --format triton: {path}'s {value.name} has no dynamic batch axis "
                            f"(shape {dims}); export the bundle again with this domainft version")
    if tensor.elem_type not in DATA_TYPES:
        raise DomainftError(f"export --format triton: {path}'s {value.name} has ONNX element type "
                            f"{tensor.elem_type}, which domainft does not map to a Triton type")
    return value.name, DATA_TYPES[tensor.elem_type], dims[1:]


def config_text(name: str, graph: dict, spec: TritonSpec, labelled: bool) -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig)."""
    def tensors(kind: str, extra: str = "") -> str:
        rows = [f'  {{ name: "{n}" data_type: {t} dims: [ {", ".join(map(str, d))} ]{extra} }}'
                for n, t, d in graph[kind]]
        return f"{kind[:-1]} [\n" + ",\n".join(rows) + "\n]"

    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', f"max_batch_size: {spec.max_batch_size}",
             tensors("inputs"), tensors("outputs", f' label_filename: "{LABELS_FILE}"' if labelled else ""),
             # Triton merges only requests whose tensors have equal shapes (same padded length).
             "dynamic_batching {",
             f"  preferred_batch_size: [ {', '.join(map(str, spec.preferred()))} ]",
             f"  max_queue_delay_microseconds: {spec.max_queue_delay_us}", "}",
             f"instance_group [ {{ count: {spec.instances} kind: KIND_CPU }} ]",
             "version_policy: { latest { num_versions: 1 } }"]
    if spec.threads:  # several instances each sized to every core would oversubscribe the CPU
        lines.append(f'parameters {{ key: "intra_op_thread_count" value: {{ string_value: "{spec.threads}" }} }}')
    return "\n".join(lines) + "\n"


def copy_client_files(bundle: Path, manifest: dict, version: Path) -> None:
    """The bundle's top-level files but its models and model card: tokenizer files, config.json
    and domainft.json, whatever names the tokenizer saved (vocab.txt, sentencepiece, merges)."""
    graphs = [f for f in (manifest.get("files") or {}).values() if isinstance(f, dict)]
    models = {Path(f["file"]).name for f in graphs} | {Path(FP32_FILE).name, Path(INT8_FILE).name}
    for path in bundle.iterdir():
        if path.is_file() and path.name not in models | {"README.md"} and path.suffix != ".onnx":
            shutil.copyfile(path, version / path.name)
    if not (version / TOKENIZER_FILE).is_file():
        raise DomainftError(f"export --format triton: {bundle} has no {TOKENIZER_FILE}; export the bundle again")


def _write_labels(model_dir: Path, manifest: dict) -> bool:
    """labels.txt, one label a line in logit order; True where Triton's classification extension
    (top-k by label, label_filename) applies: one vector of logits per text."""
    if manifest["task"] == "regression" or not manifest.get("labels"):
        return False
    (model_dir / LABELS_FILE).write_text("".join(f"{label}\n" for label in manifest["labels"]), encoding="utf-8")
    return manifest["task"] in ("classification", "multilabel")


def _write_marker(tmp: Path, name: str, precision: str, bundle: Path, chosen: str) -> None:
    files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()) + [MARKER]
    marker = {"format": REPOSITORY_FORMAT, "format_version": 1, "domainft_version": __version__, "model": name,
              "version": int(VERSION), "precision": precision, "source": {"bundle": str(bundle.resolve()),
                                                                          "file": chosen},
              "files": sorted(files)}
    (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
