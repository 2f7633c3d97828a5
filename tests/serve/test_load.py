"""Several clients at once over real sockets (uvicorn on 127.0.0.1), and clients that misbehave.

Turns queue for the one model, so N clients take about N turns' time; each must get its own complete
answer, the server must keep serving while others send garbage or vanish mid-answer, and when they are
gone nothing of theirs is left: no session, no turn holding the model."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

pytest.importorskip("websockets", reason="the serve extra is not installed: pip install 'text-to-talk[serve]'")
import httpx  # noqa: E402
import psutil  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from ttt.eval.metrics import normalize  # noqa: E402

CLIENTS = 3


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/v1/talk"


async def ask(base: str, question: bytes) -> tuple[dict, list[dict]]:
    """One client: connect, speak the question, collect events until done."""
    async with connect(ws_url(base), max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(question)
        events = []
        while True:
            event = json.loads(await ws.recv())
            assert event["type"] != "error", event
            if event["type"] == "done":
                return event, events
            events.append(event)


def wait_idle(base: str, timeout: float = 20.0) -> dict:
    """/health once every session has closed and no turn holds the model."""
    deadline = time.monotonic() + timeout
    while True:
        health = httpx.get(base + "/health").json()
        if (health["sessions"] == 0 and not health["busy"]) or time.monotonic() > deadline:
            return health
        time.sleep(0.1)


def test_concurrent_clients_all_get_their_answers(live_server, question_bytes):
    base, _ = live_server
    rss_before = psutil.Process().memory_info().rss

    async def everyone():
        return await asyncio.wait_for(asyncio.gather(*[ask(base, question_bytes) for _ in range(CLIENTS)]), 120)

    start = time.perf_counter()
    results = asyncio.run(everyone())
    wall = time.perf_counter() - start
    for done, events in results:
        assert normalize(done["text"]).split()[-1] == "nine" and done["turn"] == 1
        assert sum(e["type"] == "audio" for e in events) >= 1
    assert wall < 120
    health = wait_idle(base)
    assert health["sessions"] == 0 and not health["busy"]
    assert psutil.Process().memory_info().rss - rss_before < 300 * 2**20


def test_misbehaving_clients_get_errors_and_others_are_served(live_server, question_bytes):
    base, _ = live_server
    served_before = wait_idle(base)["turns_served"]

    async def scenario():
        # a client that leaves mid-answer (after its first streamed event)
        async with connect(ws_url(base), max_size=None) as quitter:
            await quitter.recv()
            await quitter.send(question_bytes)
            first = json.loads(await quitter.recv())
            assert first["type"] == "turn"
        # a client that leaves while its turn waits behind another's
        served = asyncio.create_task(ask(base, question_bytes))
        async with connect(ws_url(base), max_size=None) as waiter:
            await waiter.recv()
            await asyncio.sleep(0.2)
            await waiter.send(question_bytes)
        # a client sending garbage and an oversized frame stays connected and is answered afterwards
        async with connect(ws_url(base), max_size=None) as rude:
            await rude.recv()
            for message, code in [(b"\x00" * 1_000_001, 413), ("{]", 400), (b"not audio", 400)]:
                await rude.send(message)
                error = json.loads(await rude.recv())
                assert error["type"] == "error" and error["code"] == code, error
            await rude.send(json.dumps({"type": "text", "text": "what is six plus three"}))
            while (event := json.loads(await rude.recv()))["type"] != "done":
                assert event["type"] != "error", event
            assert "nine" in event["text"]
        return await asyncio.wait_for(served, 60)

    done, _ = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert normalize(done["text"]).split()[-1] == "nine"
    big = httpx.post(base + "/v1/chat", files={"audio": ("big.wav", b"\0" * 1_000_001, "audio/wav")})
    assert big.status_code == 413 and "limit is 1000000 bytes" in big.json()["detail"]
    health = wait_idle(base)
    assert health["sessions"] == 0 and not health["busy"], health
    # the two clients that left had their turns cancelled: only the other two answers were computed
    assert health["turns_served"] - served_before == 2
