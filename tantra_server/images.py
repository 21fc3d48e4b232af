"""``POST /v1/tantra/describe``: what ``tantra describe`` prints, for an image sent as a multipart file.

OpenAI's API has no route that gives an image's labels and text, so this one is Tantra's own; ``tantra describe
--server`` uses it, and so do chats whose images a server reads.
"""

from __future__ import annotations

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tantra_server.errors import bad_request
from tantra_server.streaming import until_gone

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


async def describe(request: Request) -> Response:
    from core.vision.image_io import load_image

    server = request.app.state.tantra
    form = await server.form(request)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_request("file is required: the image, as a multipart file field", "file")
    top = str(form.get("top") or "5")
    if not top.isdigit() or not 1 <= int(top) <= 20:
        raise bad_request("top must be a whole number from 1 to 20", "top")
    ocr = str(form.get("ocr") or "").lower() or None
    if ocr is not None and ocr not in _TRUE + _FALSE:
        raise bad_request("ocr must be true or false", "ocr")
    prompt = str(form.get("prompt") or "") or None
    data, label = await upload.read(), upload.filename or "image"
    await server.model("vision")
    describer = await anyio.to_thread.run_sync(server.describer, None if ocr is None else ocr in _TRUE)

    async def in_line() -> dict:
        vision = server.lanes["vision"]
        async with vision.slot():
            loaded = await vision.run(load_image, data, label)
            facts = await vision.run(describer.facts, loaded, int(top))
        if describer.remote is not None or prompt:
            # SpikingBrain may answer (no remote vision model): in the chat queue, never beside another reply.
            chat = server.lanes["language"]
            async with chat.slot():
                facts["answer"] = await chat.run(describer.answer, loaded[0], facts, prompt)
        return facts

    return JSONResponse(await until_gone(request, in_line()))
