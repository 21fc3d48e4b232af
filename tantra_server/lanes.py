"""One queue per role: a model serves a bounded number of requests at a time, a bounded number wait, and the
rest are told to come back (429 with ``Retry-After``) instead of piling up in memory.

Each role's work runs on threads of its own, always the same ones: glibc gives every new thread that allocates
its own heap, so model work spread over a pool's changing threads grew the server by 250 MB in 128 image
descriptions; on the role's own thread it stays flat."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from tantra_server.errors import ApiError


class Lane:
    """``async with lane.slot(): ...`` runs at most ``workers`` at once with at most ``waiting`` more in line."""

    def __init__(self, role: str, workers: int = 1, waiting: int = 32) -> None:
        self.role, self.workers, self.waiting = role, workers, waiting
        self.threads = ThreadPoolExecutor(workers, thread_name_prefix=f"tantra-{role}")
        self._running = asyncio.Semaphore(workers)
        self.admitted = 0  # running + waiting
        self.served = 0
        self._mean_seconds = 1.0  # a moving average of one request's time: what Retry-After is estimated from

    @property
    def busy(self) -> int:
        return min(self.admitted, self.workers)

    @property
    def queued(self) -> int:
        return max(0, self.admitted - self.workers)

    def retry_after(self) -> int:
        """Seconds until a place in line is likely free: the line's length in requests' time, at least 1."""
        return max(1, math.ceil(self._mean_seconds * (self.queued + 1) / self.workers))

    async def enter(self) -> Callable[[], None]:
        """Take a place in line and wait for a worker; 429 at once when the line is full. Returns what gives the
        place back (once, however often it is called)."""
        if self.admitted >= self.workers + self.waiting:
            wait = self.retry_after()
            raise ApiError(429, f"the {self.role} queue is full ({self.waiting} waiting); retry in {wait} s",
                           "queue_full", headers={"Retry-After": str(wait)})  # fmt: skip
        self.admitted += 1
        try:
            await self._running.acquire()
        except BaseException:  # the client left while waiting: its place goes at once
            self.admitted -= 1
            raise
        loop = asyncio.get_running_loop()
        started, left = loop.time(), False

        def leave() -> None:
            nonlocal left
            if not left:
                left = True
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (loop.time() - started)
                self.served += 1
                self.admitted -= 1
                self._running.release()

        return leave

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        leave = await self.enter()
        try:
            yield
        finally:
            leave()

    async def run(self, work: Callable, *args):
        """``work(*args)`` on this role's thread (call it with a place in line)."""
        return await asyncio.get_running_loop().run_in_executor(self.threads, work, *args)

    async def call(self, work: Callable, *args):
        """``work(*args)`` on this role's thread once it is this request's turn."""
        async with self.slot():
            return await self.run(work, *args)

    def status(self) -> dict:
        return {"running": self.busy, "waiting": self.queued, "limit": self.workers + self.waiting,
                "served": self.served}  # fmt: skip
