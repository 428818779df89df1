"""Dynamic micro-batching: texts from concurrent requests share one model call.

An HTTP server (domainft.server) hands each request's texts to `MicroBatcher.predict` and awaits
their results. One background task waits for a free inference thread (`workers` of them), then
takes what is queued as a batch (up to `max_batch` texts, waiting at most `max_wait_s` for more once
the first has arrived) and hands it to that thread, so the event loop keeps reading requests while
the model computes, and texts queue up into the next batch while every thread is busy. Two threads
each running a batch keep 2 cores busier than one batch split over both (the engine's threads
synchronise at every operator). A text's result does not depend on its
batch-mates: the bundle's predictor makes it so (static int8 or fp32 per row; dynamic int8 one row
at a time), and a batch that fails is re-run text by text, so one bad text fails only its own
request. Torch-free: only asyncio and the standard library.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

_STOP = object()


class MicroBatcher:
    """predict_batch(list of inputs) -> list of results, called from one thread, one batch at a time.

    on_batch(size, seconds), if given, is told each batch's size and model time (for metrics)."""

    def __init__(self, predict_batch: Callable[[list], list], max_batch: int = 32, max_wait_s: float = 0.0,
                 on_batch: Callable[[int, float], None] | None = None, workers: int = 1):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self.predict_batch = predict_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self.workers = workers
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._free = asyncio.Semaphore(self.workers)
        self._running: set[asyncio.Task] = set()
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="domainft-inference")
        self._task = asyncio.create_task(self._loop(), name="domainft-microbatcher")

    async def stop(self) -> None:
        """Finish every text queued so far, then stop (graceful shutdown: in-flight requests complete)."""
        if self._task is None:
            return
        await self._queue.put((_STOP, None))
        await self._task
        await asyncio.gather(*self._running)
        self._executor.shutdown(wait=True)
        self._task = None

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def predict(self, inputs: Sequence[Any]) -> list:
        """The results for `inputs`, in order; raises the first text's error if any text failed."""
        if self._task is None or self._task.done():
            raise RuntimeError("the micro-batcher is not running")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in inputs]
        for item, future in zip(inputs, futures):
            self._queue.put_nowait((item, future))
        return list(await asyncio.gather(*futures))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            await self._free.acquire()  # a thread is free: what is queued now becomes its batch
            batch, stopping = await self._collect(loop)
            if not batch:
                self._free.release()
                continue
            task = asyncio.create_task(self._run_and_release(loop, batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _collect(self, loop) -> tuple[list, bool]:
        """The next batch, and whether the stop signal came after it."""
        first = await self._queue.get()
        if first[0] is _STOP:
            return [], True
        batch, deadline = [first], loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            if item[0] is _STOP:  # run what was queued before the stop, then end
                return batch, True
            batch.append(item)
        return batch, False

    async def _run_and_release(self, loop, batch: list) -> None:
        try:
            await self._run(loop, batch)
        finally:
            self._free.release()

    async def _run(self, loop, batch: list) -> None:
        live = [(item, future) for item, future in batch if not future.done()]  # cancelled: client gone
        if not live:
            return
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.predict_batch, [i for i, _ in live])
            outcomes = [(r, None) for r in results]
        except Exception:  # noqa: BLE001 - one text's error must not fail its batch-mates: re-run singly
            outcomes = await loop.run_in_executor(self._executor, self._one_by_one, [i for i, _ in live])
        if self.on_batch is not None:
            self.on_batch(len(live), time.perf_counter() - started)
        for (_, future), (result, error) in zip(live, outcomes):
            if future.done():
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

    def _one_by_one(self, items: list) -> list[tuple[Any, Exception | None]]:
        outcomes = []
        for item in items:
            try:
                outcomes.append((self.predict_batch([item])[0], None))
            except Exception as e:  # noqa: BLE001 - handed to the request that sent the text
                outcomes.append((None, e))
        return outcomes

