"""Blocking model work (a generator of tokens or audio) run on a worker thread and consumed by the event loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from typing import TypeVar

import anyio
from starlette.responses import StreamingResponse

T = TypeVar("T")


async def iterate_in_thread(make: Callable[[], Iterator[T]], threads: Executor,
                            done: Callable[[], None] | None = None) -> AsyncIterator[T]:  # fmt: skip
    """The items of ``make()``, made and iterated on one of ``threads``, handed over as each is ready.

    When the consumer stops early (a client that disconnected, an error), the iterator is closed on its own thread
    at its next item: a reply being decoded stops within one token. This returns only once the thread is done, so
    a model is never used by two requests at once. ``done`` is called (on the event loop) as soon as the thread is
    done, which may be before the consumer has taken every item: a client that reads slowly holds no model.
    """
    loop = asyncio.get_running_loop()
    handed: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def hand(kind: str, value=None) -> None:
        try:
            loop.call_soon_threadsafe(handed.put_nowait, (kind, value))
        except RuntimeError:  # the loop is gone (the server stopped): nobody to hand it to
            pass

    def work() -> None:
        try:
            iterator = make()
            try:
                for item in iterator:
                    hand("item", item)
                    if stop.is_set():
                        break
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            hand("error", error)
        finally:
            hand("done")

    worker = loop.run_in_executor(threads, work)
    if done is not None:
        worker.add_done_callback(lambda _: done())
    try:
        while True:
            kind, value = await handed.get()
            if kind == "done":
                break
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        with anyio.CancelScope(shield=True):  # even when cancelled, wait for the thread to let go of the model
            await worker


class HeldStreamingResponse(StreamingResponse):
    """A streamed response that gives its queue place back when it ends, however it ends: finished, the client
    gone mid-stream, or before the first byte was sent."""

    def __init__(self, content, release: Callable[[], None | Awaitable[None]], **kwargs) -> None:
        super().__init__(content, **kwargs)
        self.release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()  # stops the model's thread (and waits for it) before the place is given back
            finally:
                self.release()


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def until_gone(request, work: Awaitable[T]) -> T:
    """``work``'s result; cancelled as soon as the client disconnects (``ClientGone``): a request waiting in line
    gives its place up at once, and a reply being decoded stops within one token. Call it once the body is read."""
    finished: list = []
    failed: list[Exception] = []

    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        async def run() -> None:
            try:
                finished.append(await work)
            except Exception as error:  # noqa: BLE001 - raised below as itself, not inside an exception group
                failed.append(error)
            group.cancel_scope.cancel()

        group.start_soon(watch)
        group.start_soon(run)
    if failed:
        raise failed[0]
    if not finished:
        if inspect.iscoroutine(work):
            work.close()  # cancelled before it began: nothing to wait for
        raise ClientGone
    return finished[0]
