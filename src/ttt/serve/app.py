"""The FastAPI app: a websocket that streams a spoken conversation, plain HTTP for scripts, and the page.

One `SpeechLM` serves every client. Turns run in worker threads (the event loop only moves messages), one
at a time behind a lock: the model is small and CPU-bound, so running two turns at once would only split
the same cores. Each websocket connection keeps its own conversation and settings; HTTP calls are
stateless. Bad input of any kind is answered with an error to that client alone.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ttt.serve import settings as knobs
from ttt.serve.audio_input import decode_audio, wav_bytes
from ttt.serve.conversation import Conversation, TurnCancelled, run_turn
from ttt.speech import SpeechLM

log = logging.getLogger(__name__)
STATIC = resources.files("ttt.serve") / "static"


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask of the server. An upload over `max_upload_bytes` is refused with 413
    before it is decoded; `max_sessions` websocket connections at once (more are closed with 1013).

    `max_history_turns` earlier turns of a websocket conversation go back into the prompt. It is 0 by
    default because the shipped model was trained on single turns: with its first turn as history it
    answered 1 of 3 arithmetic probes right, without it 3 of 3 (docs/serve.md)."""

    max_upload_bytes: int = 4 * 1024 * 1024
    max_audio_seconds: float = 20.0
    max_text_chars: int = 500
    max_history_turns: int = 0
    max_sessions: int = 64


class _Server:
    """The state the endpoints share: the model, its lock, the worker threads and live counters."""

    def __init__(self, lm: SpeechLM, limits: ServeLimits, info: dict) -> None:
        self.lm, self.limits, self.info = lm, limits, info
        self.lock = threading.Lock()
        self.workers = ThreadPoolExecutor(max_workers=limits.max_sessions + 4, thread_name_prefix="ttt-turn")
        self.sessions = 0
        self.turns_served = 0
        self.audio_chunk = lm.model.config.audio_chunk

    def client_settings(self) -> dict:
        """A new client's settings: the model's decoding (its decoding.json) for the settable fields."""
        return {k: v for k, v in self.lm.generation.items() if k in knobs.CLIENT_FIELDS}

    def turn(self, conversation: Conversation, emit, cancel: threading.Event, audio: bytes | None,
             text: str | None, transcribe: bool = True):
        """Decode the input and answer it (in a worker thread, holding the model)."""
        wave = sr = None
        if audio is not None:
            wave, sr = decode_audio(audio, "audio", self.limits.max_audio_seconds)
        elif text is not None and len(text) > self.limits.max_text_chars:
            raise ValueError(f"text is {len(text)} characters; the limit is {self.limits.max_text_chars}")
        with self.lock:
            if cancel.is_set():
                raise TurnCancelled()
            result = run_turn(self.lm, conversation, emit, cancel, wave, sr, text, transcribe)
            self.turns_served += 1
            return result


def create_app(lm: SpeechLM, limits: ServeLimits | None = None, info: dict | None = None) -> FastAPI:
    """The app around a loaded `SpeechLM`; `info` adds fields to `GET /v1/model` (e.g. the model path)."""
    server = _Server(lm, limits or ServeLimits(), dict(info or {}))

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        server.workers.shutdown(wait=False, cancel_futures=True)  # queued turns of a stopping server

    app = FastAPI(title="ttt serve", summary="TtT speech-text model: streamed spoken conversation",
                  lifespan=lifespan)
    app.state.server = server
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "sessions": server.sessions, "busy": server.lock.locked(),
                "turns_served": server.turns_served}

    @app.get("/v1/model")
    async def model_info() -> dict:
        return _model_info(server)

    @app.post("/v1/chat")
    async def chat(request: Request) -> JSONResponse:
        audio, text, changes = await _read_chat_request(request, server.limits)
        try:
            conversation = Conversation(knobs.resolve(server.client_settings(), changes, server.audio_chunk))
            loop = asyncio.get_running_loop()
            done, answer = await loop.run_in_executor(
                server.workers, server.turn, conversation, lambda event: None, threading.Event(), audio, text)
        except ValueError as err:
            raise HTTPException(400, str(err)) from None
        wav = None
        if answer is not None and len(answer.wave):
            wav = base64.b64encode(wav_bytes(answer.wave, answer.sample_rate)).decode("ascii")
        body = {k: v for k, v in done.items() if k not in ("type", "turn", "history_turns")}
        return JSONResponse({**body, "sample_rate": lm.codec.sample_rate, "wav": wav})

    @app.websocket("/v1/talk")
    async def talk(ws: WebSocket) -> None:
        await _Session(server, ws).serve()

    return app


def _model_info(server: _Server) -> dict:
    lm = server.lm
    config = lm.model.config
    return {
        **server.info,
        "parameters": sum(p.numel() for p in lm.model.parameters()),
        "device": str(lm.model.device),
        "mode": config.mode,
        "context": getattr(lm.model.backbone.config, "max_position_embeddings", None),
        "text_chunk": config.text_chunk,
        "audio_chunk": config.audio_chunk,
        "codec": {"codebook_size": lm.codec.codebook_size, "sample_rate": lm.codec.sample_rate,
                  "frame_rate": lm.codec.frame_rate},
        "decoding": knobs.full(lm.generation),
        "settings": knobs.schema(server.client_settings()),
        "limits": asdict(server.limits),
    }


async def _read_chat_request(request: Request, limits: ServeLimits) -> tuple[bytes | None, str | None, dict]:
    """(audio bytes, text, settings) from a multipart form (`audio` file, optional `settings` JSON field),
    a JSON body (`text`, optional `settings`) or a raw audio body; 413 past the upload limit, read or not."""
    limit = limits.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload is {int(declared)} bytes; the limit is {limit} bytes")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise HTTPException(413, f"upload is over {limit} bytes; the limit is {limit} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise HTTPException(400, f"body is not valid JSON: {err}") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise HTTPException(400, 'JSON body must be an object with a "text" string (audio goes as multipart)')
        return None, data["text"], _settings_field(data.get("settings"))
    if kind == "multipart/form-data":
        form = await Request(request.scope, _replay(bytes(body))).form(max_files=1, max_fields=4, max_part_size=limit)
        upload = form.get("audio")
        if upload is None or isinstance(upload, str):
            raise HTTPException(400, 'multipart body needs a file field named "audio"')
        changes = form.get("settings")
        return await upload.read(), None, _settings_field(json.loads(changes) if isinstance(changes, str) else None)
    if kind.startswith("audio/") or kind == "application/octet-stream":
        return bytes(body), None, {}
    raise HTTPException(415, f"unsupported content type {kind or 'none'!r}: send multipart/form-data with an "
                             "'audio' file, application/json with 'text', or an audio/* body")


def _settings_field(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HTTPException(400, "settings must be a JSON object")
    return value


def _replay(body: bytes):
    """An ASGI receive that hands the already-read (size-checked) body to Starlette's form parser."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class _Session:
    """One websocket client: its conversation, its running turn, and the message protocol (docs/serve.md).

    Client -> server: a binary message is a spoken turn (a WAV/FLAC/Ogg/WebM file); text messages are
    JSON: {"type": "text", "text": ...}, {"type": "settings", "settings": {...}}, {"type": "reset"}.
    Server -> client: JSON events ready, turn, text, audio, done, settings, reset, error."""

    def __init__(self, server: _Server, ws: WebSocket) -> None:
        self.server, self.ws = server, ws
        self.conversation = Conversation(server.client_settings(), max_turns=server.limits.max_history_turns)
        self.task: asyncio.Task | None = None
        self.cancel = threading.Event()
        self.open = True

    async def serve(self) -> None:
        server = self.server
        if server.sessions >= server.limits.max_sessions:
            await self.ws.close(code=1013, reason=f"server busy: {server.sessions} sessions open")
            return
        await self.ws.accept()
        server.sessions += 1
        try:
            await self.send({"type": "ready", "settings": knobs.full(self.conversation.settings),
                             "limits": asdict(server.limits), "sample_rate": server.lm.codec.sample_rate})
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self.handle(message)
        finally:
            self.open = False
            await self.stop_turn()
            server.sessions -= 1

    async def send(self, event: dict) -> None:
        """Send if the client is still there; a send that fails means it left, which cancels its turn."""
        if not self.open:
            return
        try:
            await self.ws.send_text(json.dumps(event))
        except Exception:  # the connection is gone, whatever the transport calls it
            self.open = False
            self.cancel.set()

    async def error(self, message: str, code: int = 400) -> None:
        await self.send({"type": "error", "code": code, "message": message})

    async def handle(self, message: dict) -> None:
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            if len(data) > self.server.limits.max_upload_bytes:
                await self.error(f"audio message is {len(data)} bytes; the limit is "
                                 f"{self.server.limits.max_upload_bytes} bytes", 413)
                return
            await self.start_turn(audio=data)
            return
        if text is None or len(text) > self.server.limits.max_upload_bytes:
            await self.error("message is empty or too long", 413 if text else 400)
            return
        try:
            request = json.loads(text)
        except json.JSONDecodeError as err:
            await self.error(f"message is not JSON ({err}); send JSON text or a binary audio file")
            return
        kind = request.get("type") if isinstance(request, dict) else None
        if kind == "text":
            if not isinstance(request.get("text"), str):
                await self.error('a "text" message needs a "text" string')
                return
            await self.start_turn(text=request["text"])
        elif kind == "settings":
            try:
                self.conversation.settings = knobs.resolve(
                    self.conversation.settings, request.get("settings"), self.server.audio_chunk)
            except (ValueError, TypeError) as err:
                await self.error(f"settings: {err}")
                return
            await self.send({"type": "settings", "settings": knobs.full(self.conversation.settings)})
        elif kind == "reset":
            await self.stop_turn()
            self.conversation.reset()
            await self.send({"type": "reset"})
        else:
            await self.error(f"unknown message type {kind!r}: expected text, settings or reset "
                             "(spoken turns are binary messages)")

    async def start_turn(self, audio: bytes | None = None, text: str | None = None) -> None:
        if self.task is not None and not self.task.done():
            await self.error("a turn is already in progress: wait for its done event (or send reset)", 409)
            return
        self.cancel = threading.Event()
        self.task = asyncio.create_task(self.run(self.cancel, audio, text))

    async def stop_turn(self) -> None:
        """Cancel the running turn, if any, and wait until its thread has let go of the model."""
        self.cancel.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def run(self, cancel: threading.Event, audio: bytes | None, text: str | None) -> None:
        """Run one turn in a worker thread and forward its events in order as they are produced."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        end = object()

        def emit(event: dict) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        future = loop.run_in_executor(
            self.server.workers, self.server.turn, self.conversation, emit, cancel, audio, text)
        future.add_done_callback(lambda _: queue.put_nowait(end))
        while (event := await queue.get()) is not end:
            await self.send(event)
        try:
            done, _ = future.result()
        except TurnCancelled:
            return
        except ValueError as err:
            await self.error(str(err))
            return
        except Exception as err:  # a bug must not take the session down with it; it is logged in full
            log.exception("turn failed")
            await self.error(f"internal error: {type(err).__name__}: {err}", 500)
            return
        await self.send(done)
