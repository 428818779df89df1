"""The micro-batcher on its own: batches up to the maximum, results in order, one text's failure
fails only the request that sent it, and stopping answers everything queued first."""
from __future__ import annotations

import asyncio
import time

import pytest

from domainft.microbatch import MicroBatcher


class Recorder:
    def __init__(self, fail_on=None, seconds=0.0):
        self.batches, self.fail_on, self.seconds = [], fail_on, seconds

    def __call__(self, items):
        self.batches.append(list(items))
        time.sleep(self.seconds)
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [f"<{x}>" for x in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_results():
    model = Recorder(seconds=0.01)

    async def main():
        batcher = MicroBatcher(model, max_batch=8, max_wait_s=0.05)
        await batcher.start()
        requests = [[f"r{r}t{t}" for t in range(1 + r % 3)] for r in range(12)]
        answers = await asyncio.gather(*(batcher.predict(items) for items in requests))
        await batcher.stop()
        return requests, answers

    requests, answers = run(main())
    assert answers == [[f"<{x}>" for x in items] for items in requests]
    assert all(len(b) <= 8 for b in model.batches) and len(model.batches) < sum(map(len, requests))


def test_a_failing_text_fails_only_its_own_request():
    model = Recorder(fail_on="bad")

    async def main():
        batcher = MicroBatcher(model, max_batch=16, max_wait_s=0.05)
        await batcher.start()
        results = await asyncio.gather(batcher.predict(["a", "b"]), batcher.predict(["bad"]),
                                       batcher.predict(["c"]), return_exceptions=True)
        await batcher.stop()
        return results

    good1, bad, good2 = run(main())
    assert good1 == ["<a>", "<b>"] and good2 == ["<c>"]
    assert isinstance(bad, ValueError) and "bad item" in str(bad)


def test_stop_answers_what_was_queued():
    model = Recorder(seconds=0.02)

    async def main():
        batcher = MicroBatcher(model, max_batch=2, max_wait_s=1.0)
        await batcher.start()
        pending = [asyncio.create_task(batcher.predict([f"t{i}"])) for i in range(5)]
        await asyncio.sleep(0)  # queued
        await batcher.stop()
        return [await p for p in pending]

    assert run(main()) == [[f"<t{i}>"] for i in range(5)]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda x: x, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        MicroBatcher(lambda x: x, max_wait_s=-1)

