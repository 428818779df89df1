"""Faults injected into `domainft run` processes by tests/test_distributed.py (imported with
--code, so that they reach every rank torchrun starts). DOMAINFT_TEST_FAULT picks one."""
import os

from transformers import TrainerCallback

import domainft.pipeline as pipeline

FAULT = os.environ.get("DOMAINFT_TEST_FAULT", "")


class StopAfterFirstSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise RuntimeError("injected: stopped after the first checkpoint")


if FAULT == "evaluate_on_rank_1" and os.environ.get("RANK") == "1":
    def broken(*args, **kwargs):
        raise RuntimeError("injected failure on rank 1")

    pipeline.evaluate = broken

if FAULT == "stop_after_first_save":
    build_trainer = pipeline.build_trainer

    def with_stop(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)
        trainer.add_callback(StopAfterFirstSave())
        return trainer

    pipeline.build_trainer = with_stop
