"""train.precision: which floating-point format training computes in, decided for this machine.

On GPUs the choice is known: bf16 where the GPU supports it (Ampere and later), fp16 with loss
scaling on older ones. On CPUs it is not: whether bf16 autocast pays depends on the chip, not on its
flags. Measured with MiniLM training steps: 2x as fast on an Intel Xeon with AMX, 2.3x on an AMD
EPYC with AVX512-BF16 (no AMX), but 0.33x-0.98x on an Intel Xeon with AVX512-BF16 and no AMX. So
`auto` on any CPU with bf16 instructions times a few training steps of the actual model both ways
and keeps bf16 only if it is clearly faster; on any other CPU it is fp32 at once. The measurement is
kept in the cache ($DOMAINFT_CACHE/precision), so the same machine decides the same way every time
(a timing is noisy; a recipe and seed must train the same model twice). What was used, and why,
goes into metrics.json (train.precision).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from domainft.errors import DomainftError

ROUNDS = 3  # alternating fp32 / bf16 timings; their median ratio decides
MIN_STEPS, MIN_SECONDS = 2, 0.3  # per timing
BF16_MARGIN = 1.1  # bf16 is chosen only when clearly faster: a tie keeps fp32's exact arithmetic
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # AMX tiles; AVX-512 bf16 dot products


@dataclass
class Precision:
    requested: str
    used: str  # fp32 | bf16 | fp16
    reason: str
    bf16_speedup: float | None = None  # measured on this CPU: fp32 step time / bf16 step time

    @property
    def trainer_flags(self) -> dict:
        return {"bf16": self.used == "bf16", "fp16": self.used == "fp16"}

    def report(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def choose_on_main_rank(requested: str, model, sample_batch: Callable[[], dict]) -> Precision:
    """choose_precision decided by the main rank (a CPU measurement, once) and handed to every rank
    of a torchrun job, so that all of them train in one precision."""
    from domainft.distributed import gather, is_main

    return gather(choose_precision(requested, model if is_main() else None, sample_batch))[0]


def mixed_precision_arguments(precision: Precision | None) -> dict:
    """TrainingArguments' bf16 / fp16 flags for `precision`, with the process's
    ACCELERATE_MIXED_PRECISION set to match. TrainingArguments writes that variable when bf16 or fp16
    is on and obeys it when both are off (it is how `accelerate launch --mixed_precision` speaks), so
    without this an fp32 training after a bf16 one in the same process (a sweep, a teacher then its
    student, an adaptation then its fine-tuning, a Python session) would still train in bf16 while
    metrics.json said fp32. The precision decided here is the one used: its reason is recorded."""
    import os

    if precision is None:
        return {}
    os.environ["ACCELERATE_MIXED_PRECISION"] = {"bf16": "bf16", "fp16": "fp16"}.get(precision.used, "no")
    return precision.trainer_flags


def choose_precision(requested: str, model=None, sample_batch: Callable[[], dict] | None = None) -> Precision:
    """The precision to train in. `sample_batch` gives one training batch (a dict of tensors) for
    the CPU measurement; without it (or a model) auto on a CPU is fp32."""
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        if requested == "auto":
            used = "bf16" if bf16 else "fp16"
            return Precision(requested, used, f"auto on {torch.cuda.get_device_name()}: "
                                              f"{'supports bf16' if bf16 else 'no bf16, fp16 with loss scaling'}")
        if requested == "bf16" and not bf16:
            raise DomainftError(f"train.precision: bf16 is not supported by {torch.cuda.get_device_name()}; "
                                "use fp16 (or auto)")
        return Precision(requested, requested, "as the recipe says")
    if requested == "fp16":
        raise DomainftError("train.precision: fp16 mixed precision needs a CUDA GPU and none is visible here; "
                            "on a CPU use fp32, bf16 or auto")
    if requested != "auto":
        return Precision(requested, requested, "as the recipe says")
    flags = cpu_flags()
    if not any(flag in flags for flag in CPU_BF16_FLAGS):
        return Precision(requested, "fp32", "auto on a CPU without bf16 instructions")
    if model is None or sample_batch is None:
        return Precision(requested, "fp32", "auto on a CPU: nothing to measure bf16 with")
    if any(type(param).__name__ == "Params4bit" for param in model.parameters()):
        return Precision(requested, "fp32", "auto on a CPU with a 4-bit base: its compute dtype decides")
    batch = sample_batch()
    cached = _cache_file(model, batch, flags)
    try:
        speedup = json.loads(cached.read_text())["bf16_speedup"]
        how = "measured earlier on this machine"
    except (OSError, ValueError, KeyError):
        try:
            speedup = measure_bf16_speedup(model, batch)
        except RuntimeError as e:  # an operator without a bf16 CPU kernel, say
            return Precision(requested, "fp32", f"auto on a CPU: bf16 could not be measured ({str(e)[:120]})")
        how = "measured"
        _remember(cached, speedup)
    used = "bf16" if speedup >= BF16_MARGIN else "fp32"
    return Precision(requested, used, f"auto on a CPU with {'/'.join(f for f in CPU_BF16_FLAGS if f in flags)}: "
                                      f"bf16 steps {how} {speedup:.2f}x as fast as fp32", round(speedup, 3))


def _cache_file(model, batch: dict, flags: set[str]) -> Path:
    """Where this machine's measurement for this model and batch shape is kept: a timing is noisy,
    and a decision that changed from one run to the next would make the same recipe and seed train
    different models on one machine. Keyed by the CPU, torch, the architecture and its size."""
    import hashlib
    import platform

    import torch

    from domainft.gguf import cache_dir

    shapes = sorted((k, tuple(v.shape)) for k, v in batch.items() if hasattr(v, "shape"))
    key = json.dumps([_cpu_name(), sorted(f for f in flags if f in CPU_BF16_FLAGS), platform.machine(),
                      torch.__version__, type(model).__name__, sum(p.numel() for p in model.parameters()),
                      shapes])
    return cache_dir() / "precision" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _remember(path: Path, speedup: float) -> None:
    from domainft.atomic import write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"bf16_speedup": speedup}))
    except OSError:
        pass  # a read-only cache: measured again next time


def _cpu_name() -> str:
    return _cpuinfo("model name")


def cpu_flags() -> set[str]:
    return set(_cpuinfo("flags").split())


def _cpuinfo(field: str) -> str:
    """The first `field` line of /proc/cpuinfo ("" where there is none: not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return next((line.partition(":")[2].strip() for line in text.splitlines() if line.startswith(field)), "")


def measure_bf16_speedup(model, batch: dict) -> float:
    """How many times as fast a bf16-autocast training step (forward + backward on `batch`) is as
    an fp32 one: the median over ROUNDS alternating rounds, so that a burst of load from another
    process on a shared machine does not decide. The model's gradients, train/eval mode and the
    random number generators are as they were before."""
    import statistics

    import torch

    was_training = model.training
    rng = torch.get_rng_state()
    model.train()
    try:
        _step(model, batch, None)  # warm-up: kernels chosen, memory allocated
        _step(model, batch, torch.bfloat16)
        ratios = [_step_time(model, batch, None) / _step_time(model, batch, torch.bfloat16) for _ in range(ROUNDS)]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        torch.set_rng_state(rng)
    return statistics.median(ratios)


def _step(model, batch: dict, dtype) -> None:
    import torch

    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        out = model(**batch)
    # Without labels in the batch (a task's own loss), the logits' mean stands in: the backward
    # pass costs the same.
    loss = out.loss if getattr(out, "loss", None) is not None else out.logits.float().mean()
    loss.backward()
    model.zero_grad(set_to_none=True)


def _step_time(model, batch: dict, dtype) -> float:
    """Seconds per step, over at least MIN_STEPS steps and MIN_SECONDS (a tiny model's step is
    milliseconds: one would be timer noise)."""
    steps, start = 0, time.perf_counter()
    while steps < MIN_STEPS or time.perf_counter() - start < MIN_SECONDS:
        _step(model, batch, dtype)
        steps += 1
    return (time.perf_counter() - start) / steps
