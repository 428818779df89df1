"""The `domainft` command: run, validate, export, predict, generate, merge, models."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from domainft.errors import DomainftError
from domainft.inputfiles import read_inputs
from domainft.jsonl import lone_surrogate, shown
from domainft.serving import FP32_FILE, INT8_FILE

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Fine-tune pretrained models into domain classifiers, taggers and generators "
                       "from YAML recipes.")
err = Console(stderr=True)
out = Console()

SET_HELP = "Override a recipe field: --set train.lr=3e-5 (repeatable)."
CODE_HELP = ("Python file(s) to import first, e.g. custom tasks or tuning methods registered with "
             "register_task / register_method (repeatable).")


def import_code(paths: list[Path] | None) -> None:
    """--code: import each Python file as a module (spaCy's --code), so the plug-ins it registers
    are there before the recipe is read."""
    import importlib.util
    import sys

    for path in paths or []:
        if not path.is_file() or path.suffix != ".py":
            raise DomainftError(f"--code: {path} is not a Python file (give the path of a .py file that "
                                "registers tasks or tuning methods)")
        name = f"domainft_code_{path.stem}"
        if getattr(sys.modules.get(name), "__file__", None) == str(path.resolve()):
            continue  # imported already in this process (its plug-ins are registered)
        spec = importlib.util.spec_from_file_location(name, path.resolve())
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look their module up here
        try:
            spec.loader.exec_module(module)
        except DomainftError:
            raise
        except Exception as e:  # the user's code: say where it failed, without our traceback
            import traceback

            frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == path.resolve()]
            frame = (frames or traceback.extract_tb(e.__traceback__))[-1]
            raise DomainftError(f"--code: importing {path} failed at {frame.filename}:{frame.lineno}: "
                                f"{type(e).__name__}: {e}") from None


TRAINING_PACKAGES = ("torch", "transformers", "peft", "datasets")


def need_training(command: str) -> None:
    """Commands that train or read a trained PyTorch model say what to install on a light (serving) install."""
    import importlib.util

    def missing(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):  # a module set to None in sys.modules, a broken install
            return True

    absent = [name for name in TRAINING_PACKAGES if missing(name)]
    if absent:
        raise DomainftError(f"{command}: this install serves exported bundles only ({', '.join(absent)} not "
                            'installed); install the training dependencies with pip install "domainft[train]" '
                            "(or scripts/setup.sh in a checkout)")


def _fail(e: Exception) -> None:
    # Bytes that were not UTF-8 (a path or text from the command line) print as \udce9, not a traceback.
    message = str(e).encode("utf-8", "backslashreplace").decode("utf-8")
    from domainft.distributed import world

    w = world()  # under torchrun every rank may fail alike; say which one speaks
    rank = f"[rank {w.rank}/{w.size}] " if w.distributed else ""
    err.print(f"{rank}error: {message}", style="red", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(getattr(e, "exit_code", 2))


def _unless_disk_full(e: Exception, places, then: str) -> None:
    """A failure that came from a full disk ends in its message; any other is raised as it was."""
    from domainft.errors import out_of_space

    full = out_of_space(e, [p for p in places if p is not None], then)
    if full is None:
        raise e
    _fail(full)


@app.command()
def run(recipe: Path = typer.Argument(..., help="YAML recipe"),
        set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
        resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last checkpoint"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars or summary"),
        code: Optional[List[Path]] = typer.Option(None, "--code", help=CODE_HELP)):
    """Train, evaluate and save a model as the recipe says."""
    try:
        need_training("run")
        import_code(code)
        from domainft.pipeline import run as run_recipe
        from domainft.recipe import Recipe

        r = Recipe.from_yaml(recipe, set_ or [])
        try:
            result = run_recipe(r, resume=resume, progress=not quiet,
                                echo=(lambda *a: None) if quiet else out.print)
        except KeyboardInterrupt:
            _interrupted(r, recipe, set_ or [])
    except DomainftError as e:
        _fail(e)
    if quiet and result.model is not None:  # the main rank's (the others wrote nothing)
        out.print(str(result.run_dir))


def _interrupted(r, recipe: Path, sets: list[str]) -> None:
    """Ctrl-C during a run: say what is kept and the command that continues, then exit 130 (as a
    shell reports SIGINT). The run itself has already left nothing half-written."""
    import shlex

    from domainft.rundir import RunDir, staging_path

    kept = [d.last_checkpoint() for d in (RunDir(r.run_dir), RunDir(staging_path(r.run_dir)))
            if d.path.is_dir()]
    kept = [k for k in kept if k]
    again = shlex.join(["domainft", "run", str(recipe), *[a for s in sets for a in ("--set", s)]])
    if kept:
        what = f"its last complete checkpoint is kept ({kept[-1]}); continue with: {again} --resume"
    else:
        what = f"no checkpoint had been saved yet; start it again with: {again}"
    from domainft.distributed import is_main

    if is_main():  # under torchrun every rank is interrupted; one says so
        err.print(f"interrupted: {r.run_dir}: {what}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(130)


def _version(value: bool) -> None:
    if value:
        from domainft import __version__

        print(f"domainft {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")):
    """Fine-tune pretrained models into domain classifiers, taggers and generators from YAML recipes."""


@app.command()
def validate(recipe: Path = typer.Argument(..., help="YAML recipe"),
             set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
             code: Optional[List[Path]] = typer.Option(None, "--code", help=CODE_HELP)):
    """Check a recipe and its data without training; print the resolved recipe."""
    try:
        need_training("validate")
        import_code(code)
        from domainft.bases import resolve_base
        from domainft.data.hub import with_hub_splits
        from domainft.recipe import Recipe
        from domainft.tasks import get_task

        r = Recipe.from_yaml(recipe, set_ or [])
        data = get_task(r.task).load_data(with_hub_splits(r.data))
        base = resolve_base(r.base.name, r.base.revision)
    except DomainftError as e:
        _fail(e)
    print(r.to_yaml())
    kind = "targets" if getattr(data, "scaling", None) is not None else "labels"  # regression: target columns
    labels = f"{kind} {', '.join(data.labels)}; " if data.labels else ""
    print(f"ok: base {base.describe()}; {labels}counts {json.dumps(data.report['counts'])}")


@app.command()
def adapt(recipe: Path = typer.Argument(..., help="YAML recipe with an adapt: section (its data and base)"),
          set_: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
          out_dir: Optional[Path] = typer.Option(None, "--out", help="copy the adapted base here (a new directory)"),
          code: Optional[List[Path]] = typer.Option(None, "--code", help=CODE_HELP)):
    """Domain-adaptive pretraining alone: masked-LM training of the recipe's base on its adapt: texts.

    Prints the adapted base's directory (cached: a recipe with the same adapt: section reuses it); any
    recipe can name it as its base."""
    try:
        need_training("adapt")
        import_code(code)
        import shutil

        from domainft.adapt import adapted_base
        from domainft.bases import resolve_base
        from domainft.prepare import read_data
        from domainft.recipe import Recipe
        from domainft.tasks import get_task

        r = Recipe.from_yaml(recipe, set_ or [])
        if not r.adapt.enabled:
            raise DomainftError("adapt: the recipe has no adaptation texts; set adapt.task_texts=true and / or "
                                "adapt.corpus=[FILE, ...]")
        if out_dir is not None and out_dir.exists():
            raise DomainftError(f"adapt --out: {out_dir} exists; give a new directory")
        task = get_task(r.task)
        try:
            base, report = adapted_base(r, resolve_base(r.base.name, r.base.revision), task, read_data(task, r),
                                        echo=out.print)
        except KeyboardInterrupt:  # its checkpoints stay in the cache: the same command goes on from them
            err.print("interrupted: the adaptation keeps its last complete checkpoint in the cache; the same "
                      "command (or a run of a recipe with this adapt: section) continues from it",
                      highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(130) from None
        where = Path(base.path)
        if out_dir is not None:
            from domainft.atomic import published_once

            with published_once(out_dir) as tmp:  # complete or absent, even after Ctrl-C mid-copy
                shutil.copytree(where, tmp, dirs_exist_ok=True)
            where = out_dir
    except DomainftError as e:
        _fail(e)
    except Exception as e:
        from domainft.gguf import cache_dir

        _unless_disk_full(e, [cache_dir(), out_dir],
                          "run the same command again: the adaptation continues from its last complete checkpoint")
    print(where)


@app.command()
def export(run_dir: Path = typer.Argument(..., help="run directory (or its model/)"),
           out_dir: Optional[Path] = typer.Option(None, "--out", help="bundle directory (default: RUN_DIR/onnx)"),
           int8: Optional[bool] = typer.Option(None, "--int8/--no-int8", help=f"also write {INT8_FILE}"),
           quantization: Optional[str] = typer.Option(
               None, help="int8 preset: avx2, avx2_u8u8, avx512, avx512_vnni, arm64"),
           max_int8_drop: Optional[float] = typer.Option(None, help="points int8 may lose on validation"),
           opset: Optional[int] = typer.Option(None, help="ONNX opset"),
           fuse: Optional[bool] = typer.Option(None, "--fuse/--no-fuse",
                                               help="dynamic int8: quantize the ONNX Runtime-fused graph"),
           int8_mode: Optional[str] = typer.Option(
               None, "--int8-mode", help="static (calibrated scales: answers independent of the batch) or dynamic"),
           calibration_examples: Optional[int] = typer.Option(
               None, help="static int8: validation examples that calibrate the activation scales"),
           code: Optional[List[Path]] = typer.Option(None, "--code", help=CODE_HELP),
           format_: str = typer.Option("bundle", "--format", help="bundle, or triton: a Triton Inference Server "
                                       "model repository (RUN_DIR may then be a bundle; --int8/--no-int8 pick "
                                       "its graph)"),
           name: Optional[str] = typer.Option(None, "--name", help="triton: model name (default: the run's)"),
           max_batch_size: int = typer.Option(32, help="triton: texts per batch at most"),
           preferred_batch_size: Optional[List[int]] = typer.Option(
               None, help="triton: dynamic batching's preferred sizes (repeatable; default 8, 16, 32)"),
           max_queue_delay_us: int = typer.Option(1000, help="triton: microseconds a request may wait for a batch"),
           instances: int = typer.Option(1, help="triton: model instances (CPU)"),
           threads: int = typer.Option(0, help="triton: ONNX Runtime threads per instance (0: all cores)")):
    """Export a trained run as an ONNX bundle (fp32 + int8), checked against PyTorch on validation,
    or (--format triton) as a Triton model repository.

    Settings default to the run's recipe `export:` section; options override them."""
    given = {"int8": int8, "quantization": quantization, "max_int8_drop": max_int8_drop, "opset": opset,
             "fuse": fuse, "int8_mode": int8_mode, "calibration_examples": calibration_examples}
    try:
        need_training("export")
        import_code(code)
        from domainft.export import export_run
        from domainft.rundir import run_dir_of
        from domainft.serving import is_bundle

        if format_ not in ("bundle", "triton"):
            raise DomainftError(f"export --format: {format_!r} is not bundle or triton")
        spec = None
        if format_ == "bundle" or not is_bundle(run_dir):
            spec = run_dir_of(run_dir).read_recipe("export").export
            spec = _export_spec({**spec.model_dump(), **{k: v for k, v in given.items() if v is not None}})
        if format_ == "bundle":
            export_run(run_dir, spec, out=out_dir, echo=out.print)
            return
        from domainft.triton import TritonSpec, export_triton

        serving = TritonSpec(max_batch_size, list(preferred_batch_size or []), max_queue_delay_us, instances, threads)
        export_triton(run_dir, serving, out_dir, name, {None: "auto", True: "int8", False: "fp32"}[int8], spec,
                      echo=out.print)
    except DomainftError as e:
        _fail(e)
    except Exception as e:
        _unless_disk_full(e, [out_dir or run_dir], "export again (this export left nothing behind)")


def _export_spec(values: dict):
    from pydantic import ValidationError

    from domainft.recipe import ExportSpec

    try:
        return ExportSpec.model_validate(values)
    except ValidationError as e:
        first = e.errors()[0]
        raise DomainftError(f"export.{'.'.join(map(str, first['loc']))}: {first['msg']} "
                            f"(got {first.get('input')!r})") from None


@app.command()
def predict(path: Path = typer.Argument(..., help="run directory (or its model/), or an exported bundle"),
            texts: Optional[List[str]] = typer.Argument(None, help="texts to predict"),
            input_file: Optional[Path] = typer.Option(None, "--input", help="a .txt file, one text per line; "
                                                      'JSONL: per line a JSON string or {"text": ...} (ner: '
                                                      'also a list of words; a text-pair model: {"text": ..., '
                                                      '"text_pair": ...}; a text_template model: rows); or a '
                                                      "CSV / TSV (a text column, or rows); gzip or not"),
            batch_size: int = typer.Option(32, min=1, help="texts per model call"),
            fp32: bool = typer.Option(False, "--fp32", help=f"bundle: use {FP32_FILE} even if int8 exists"),
            code: Optional[List[Path]] = typer.Option(None, "--code", help=CODE_HELP)):
    """Predict with a trained run or an exported bundle (no torch needed); one JSON object per text."""
    try:
        import_code(code)
        given = _arguments("predict", "text", texts)
        _note_file_arguments(given)
        if not given and input_file is None:
            raise DomainftError("predict: give texts as arguments or --input FILE (.txt, .jsonl or .csv)")
        model = _predictor(path, fp32)
        rows = getattr(model, "records", None)  # a model trained on texts built from columns renders rows
        items = given + (read_inputs(input_file, words=True, rows=rows) if input_file else [])
        predictions = model.predict(items, batch_size=batch_size)
    except DomainftError as e:
        _fail(e)
    for item, pred in zip(items, predictions):
        shown = item if isinstance(item, dict) else {"text": item}  # a pair shows both texts
        print(json.dumps({**shown, **pred}, ensure_ascii=False))


def _predictor(path: Path, fp32: bool):
    from domainft.serving import is_bundle

    if is_bundle(path):
        from domainft.serving import load as load_bundle

        try:
            return load_bundle(path, "fp32" if fp32 else "auto")
        except DomainftError:
            raise
        except Exception as e:  # onnxruntime / tokenizers on a damaged file: say which bundle, no traceback
            raise DomainftError(f"predict: the bundle in {path} could not be loaded ({type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else 'no detail'}); it is incomplete or "
                                "damaged: export it again with `domainft export RUN_DIR`") from None
    try:
        need_training("predict (a run directory; an exported bundle needs no torch)")
    except DomainftError:
        from domainft.serving import bundle_of

        try:  # a light install given an exported run: its bundle answers the same
            bundle = bundle_of(path)
        except DomainftError:
            bundle = None
        if bundle is None:
            raise
        return _predictor(bundle, fp32)
    from domainft.model import load

    return load(path)


@app.command()
def serve(path: Path = typer.Argument(..., help="exported bundle, or a run directory that has been exported"),
          host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
          port: int = typer.Option(8000, min=0, max=65535, help="TCP port"),
          workers: int = typer.Option(1, min=1, help="server processes, each with its own copy of the model"),
          fp32: bool = typer.Option(False, "--fp32", help="serve model.onnx even if the bundle has int8"),
          inference_threads: Optional[int] = typer.Option(None, min=1, help="model calls at once, each on its "
                                                          "own batch (default: 4 per core)"),
          threads: Optional[int] = typer.Option(None, min=1, help="ONNX Runtime threads per model call "
                                                "(default: cores / --inference-threads, at least 1)"),
          max_batch_size: int = typer.Option(1, min=1, help="texts per model call: above 1, concurrent "
                                             "requests' texts share calls (micro-batching)"),
          max_wait_ms: float = typer.Option(0.0, min=0, help="how long a batch waits for more texts once "
                                            "a thread is free (0: it takes what is queued)"),
          max_texts: int = typer.Option(64, min=1, help="texts per request"),
          max_chars: int = typer.Option(20_000, min=1, help="characters per text"),
          max_body_bytes: int = typer.Option(2 * 2**20, min=1, help="request body size"),
          graceful_timeout: float = typer.Option(30.0, min=0, help="seconds requests in flight get at shutdown"),
          log_level: str = typer.Option("info", help="uvicorn's log level: critical, error, warning, info, debug")):
    """Serve a bundle over HTTP (JSON): POST /predict, /health, /ready, /metrics, /docs.

    Concurrent requests are micro-batched; each text gets the answer `domainft predict` gives it.
    Needs only the serve extra (pip install "domainft[serve]"): no torch."""
    try:
        try:
            from domainft.server import ServeSettings
            from domainft.server import serve as run_server
        except ImportError as e:
            raise DomainftError(f"serve: {e.name} is not installed; install the server with "
                                'pip install "domainft[serve]"') from None
        settings = ServeSettings(bundle=str(path), precision="fp32" if fp32 else "auto", threads=threads,
                                 inference_threads=inference_threads,
                                 max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_texts=max_texts,
                                 max_chars=max_chars, max_body_bytes=max_body_bytes)
        run_server(path, settings, host, port, workers, graceful_timeout, log_level)
    except DomainftError as e:
        _fail(e)


def _arguments(command: str, what: str, values: list[str] | None) -> list[str]:
    """Texts given on the command line; bytes that were not UTF-8 reach Python as lone surrogates,
    which no tokenizer takes: refused with the argument's position."""
    values = list(values or [])
    for i, value in enumerate(values, start=1):
        if lone_surrogate(value) is not None:
            raise DomainftError(f"{command}: {what} argument {i} ({shown(value)}) is not valid UTF-8 text; pass "
                                "UTF-8 (check the terminal's or the script's encoding), or give the texts in "
                                "an --input JSONL file")
    return values


def _note_file_arguments(texts: list[str]) -> None:
    """A text argument that names a file is still a text (it may be meant so), but say how to read the
    file: `domainft predict RUN texts.txt` otherwise predicts the label of the word 'texts.txt'."""
    for text in texts:
        if "\n" not in text and len(text) < 4096 and Path(text).is_file():
            err.print(f"note: {text!r} is predicted as a text; to predict the texts in that file, pass "
                      f"--input {text}", highlight=False, markup=False, soft_wrap=True)


@app.command()
def generate(run_dir: Path = typer.Argument(..., help="run directory of a task: generation recipe"),
             prompts: Optional[List[str]] = typer.Argument(None, help="prompts (user messages)"),
             input_file: Optional[Path] = typer.Option(None, "--input", help="a .txt file, one prompt per line, or "
                                                       'JSONL: per line a JSON string, {"prompt": ...} or '
                                                       '{"messages": [...]}; gzip or not'),
             max_new_tokens: Optional[int] = typer.Option(None, min=1, max=8192,
                                                          help="default: the recipe's generation.max_new_tokens"),
             sample: bool = typer.Option(False, "--sample", help="sample instead of greedy decoding"),
             temperature: float = typer.Option(1.0, help="with --sample (above 0)"),
             top_p: float = typer.Option(1.0, help="with --sample (above 0, at most 1)"),
             seed: int = typer.Option(0, help="with --sample: the same seed gives the same text"),
             batch_size: int = typer.Option(8, min=1, help="prompts per model call"),
             code: Optional[List[Path]] = typer.Option(None, "--code", help=CODE_HELP)):
    """Answer prompts with a trained generation run; one JSON object per prompt."""
    try:
        need_training("generate")
        from domainft.model import load

        import_code(code)
        if sample and not temperature > 0:
            raise DomainftError(f"generate: --temperature must be above 0 (got {temperature:g}); for "
                                "greedy decoding leave out --sample")
        if sample and not 0 < top_p <= 1:
            raise DomainftError(f"generate: --top-p must be above 0 and at most 1 (got {top_p:g})")
        given = (read_inputs(input_file, ("messages", "prompt"), 'a JSON string, {"prompt": ...} or '
                              '{"messages": [...]}') if input_file else [])
        items = _arguments("generate", "prompt", prompts) + given
        if not items:
            raise DomainftError("generate: give prompts as arguments or --input FILE (.txt or .jsonl)")
        responses = load(run_dir).generate(items, max_new_tokens, batch_size, sample, temperature, top_p,
                                           seed if sample else None)
    except DomainftError as e:
        _fail(e)
    for prompt, response in zip(items, responses):
        print(json.dumps({"prompt": prompt, "response": response}, ensure_ascii=False))


@app.command()
def merge(run_dir: Path = typer.Argument(..., help="run directory of a task: generation recipe"),
          out_dir: Optional[Path] = typer.Option(None, "--out", help="default: RUN_DIR/merged"),
          code: Optional[List[Path]] = typer.Option(None, "--code", help=CODE_HELP)):
    """Merge a generation run's adapter into a full-precision copy of its base (plain transformers).

    qlora runs are merged into the float32 base, not the 4-bit one (that would be lossy); the
    validation loss of both is printed."""
    try:
        need_training("merge")
        from domainft.merge import merge_run

        import_code(code)
        merge_run(run_dir, out_dir, echo=out.print)
    except DomainftError as e:
        _fail(e)
    except Exception as e:
        _unless_disk_full(e, [out_dir or run_dir], "merge again (this merge left nothing behind)")


@app.command()
def models(prepare: Optional[str] = typer.Option(None, "--prepare", help="make a packaged alias ready "
                                                 "offline now (smollm2: convert its GGUF file once)")):
    """List the base aliases and whether each is available offline."""
    from rich.table import Table

    from domainft.bases import available_models, prepare_base

    if prepare:
        try:
            out.print(f"{prepare}: ready in {prepare_base(prepare)}")
        except DomainftError as e:
            _fail(e)

    table = Table("alias", "available", "where", "description")
    for row in available_models():
        avail = {True: "yes", False: "no", None: "online"}[row["available"]]
        table.add_row(row["alias"], avail, row["where"], row["description"])
    out.print(table)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
