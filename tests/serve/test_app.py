"""The server in-process (Starlette's TestClient): HTTP endpoints, the websocket protocol, and bad input.

The shipped model answers the shipped question "what is six plus three" with "six plus three is nine";
every test that asks it checks that answer, in text and in audio that decodes."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'text-to-talk[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from ttt.eval.metrics import normalize  # noqa: E402
from ttt.serve.app import ServeLimits, create_app  # noqa: E402

LIMITS = ServeLimits(max_upload_bytes=200_000, max_audio_seconds=5.0, max_history_turns=2, max_sessions=4)


@pytest.fixture(scope="module")
def client(speech_lm):
    with TestClient(create_app(speech_lm, LIMITS, info={"model_dir": "shipped"})) as c:
        yield c


def wav_of(b64: str) -> tuple[np.ndarray, int]:
    wave, sr = sf.read(io.BytesIO(base64.b64decode(b64)), dtype="float32")
    return wave, sr


def silent_wav(seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(16000 * seconds), dtype=np.float32), 16000, format="WAV")
    return buffer.getvalue()


def test_health_model_info_and_page(client):
    assert client.get("/health").json() == {"status": "ok", "sessions": 0, "busy": False,
                                            "turns_served": client.get("/health").json()["turns_served"]}
    info = client.get("/v1/model").json()
    assert info["model_dir"] == "shipped" and info["parameters"] > 1_000_000 and info["device"] == "cpu"
    assert info["decoding"]["steps"] == 4 and info["decoding"]["max_last_span"] == 75  # decoding.json
    knobs = {k["name"]: k for k in info["settings"]}
    assert {"steps", "temperature", "top_p", "cfg_scale", "stop_threshold"} <= set(knobs)
    assert knobs["steps"]["value"] == 4 and knobs["stop_threshold"]["value"] is None
    assert knobs["final_span"]["choices"] == ["cached", "official"] and knobs["final_span"]["value"] == "cached"
    assert knobs["cfg_context"]["choices"] == ["prompt", "all"] and knobs["steps"]["choices"] is None
    assert info["limits"]["max_upload_bytes"] == 200_000 and info["codec"]["sample_rate"] == 16000
    page = client.get("/")
    assert page.status_code == 200 and "talk to the model" in page.text and "/static/app.js" in page.text
    for asset in ("app.js", "capture-worklet.js"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_http_chat_answers_a_spoken_question_with_text_and_wav(client, question_bytes):
    r = client.post("/v1/chat", files={"audio": ("q.wav", question_bytes, "audio/wav")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert normalize(body["text"]).split()[-1] == "nine"
    assert normalize(body["heard"]) == "what is six plus three"
    wave, sr = wav_of(body["wav"])
    assert sr == 16000 and len(wave) / sr == pytest.approx(body["audio_seconds"], abs=0.01) and len(wave) > 8000
    assert 0 < body["first_audio_s"] < body["wall_s"]
    raw = client.post("/v1/chat", content=question_bytes, headers={"content-type": "audio/wav"})
    assert raw.status_code == 200 and raw.json()["text"] == body["text"]


def test_http_chat_answers_typed_text_in_speech(client):
    r = client.post("/v1/chat", json={"text": "what is six plus three", "settings": {"steps": 2}})
    assert r.status_code == 200, r.text
    assert normalize(r.json()["text"]).split()[-1] == "nine" and "heard" not in r.json()
    wave, sr = wav_of(r.json()["wav"])
    assert len(wave) > 8000 and np.abs(wave).max() > 0.01


@pytest.mark.parametrize("kwargs, status, words", [
    ({"files": {"audio": ("notes.txt", b"this is not audio at all" * 10, "text/plain")}}, 400, "not an audio file"),
    ({"files": {"audio": ("big.wav", b"\0" * 200_001, "audio/wav")}}, 413, "limit is 200000 bytes"),
    ({"files": {"audio": ("silence.wav", silent_wav(), "audio/wav")}}, 400, "silent"),
    ({"files": {"audio": ("long.wav", silent_wav(6.0)[:44] + np.full(96000, 3000, "<i2").tobytes(), "audio/wav")}},
     400, "limit is 5 s"),
    ({"files": {"other": ("q.wav", b"RIFF", "audio/wav")}}, 400, 'file field named "audio"'),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"json": {"question": "hi"}}, 400, '"text" string'),
    ({"json": {"text": "hi", "settings": {"steps": 0}}}, 400, "steps must be positive"),
    ({"json": {"text": "hi", "settings": {"force_text": "x"}}}, 400, "server-only setting 'force_text'"),
    ({"json": {"text": "x" * 501}}, 400, "limit is 500"),
    ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "unsupported content type"),
])
def test_http_bad_input_is_a_clear_error(client, kwargs, status, words):
    r = client.post("/v1/chat", **kwargs)
    assert r.status_code == status and words in r.json()["detail"], r.text


def collect_turn(ws) -> tuple[list[dict], dict]:
    """Events of one turn up to its done event (an error event fails the test)."""
    events = []
    while True:
        event = ws.receive_json()
        assert event["type"] != "error", event
        if event["type"] == "done":
            return events, event
        events.append(event)


def test_websocket_streams_a_conversation(client, question_bytes):
    with client.websocket_connect("/v1/talk") as ws:
        ready = ws.receive_json()
        assert ready["type"] == "ready" and ready["settings"]["steps"] == 4 and ready["sample_rate"] == 16000
        assert client.get("/health").json()["sessions"] == 1
        ws.send_bytes(question_bytes)
        events, done = collect_turn(ws)
        assert events[0] == {"type": "turn", "turn": 1, "input": "audio", "seconds": 2.01}
        text = "".join(e["delta"] for e in events if e["type"] == "text")
        audio = [e for e in events if e["type"] == "audio"]
        assert text.strip() == done["text"] and normalize(done["text"]).split()[-1] == "nine"
        assert audio and all(wav_of(e["wav"])[1] == 16000 for e in audio)
        # streamed: the first audio chunk comes before the last text delta's turn ends, and chunks add up
        assert sum(len(wav_of(e["wav"])[0]) for e in audio) / 16000 == pytest.approx(done["audio_seconds"], abs=0.05)
        assert done["history_turns"] == 1 and normalize(done["heard"]) == "what is six plus three"

        ws.send_text(json.dumps({"type": "settings", "settings": {"steps": 2, "stop_threshold": 0.5,
                                                                  "final_span": "official"}}))
        assert ws.receive_json() == {"type": "settings", "settings": {**ready["settings"], "steps": 2,
                                                                      "stop_threshold": 0.5, "final_span": "official"}}
        ws.send_text(json.dumps({"type": "text", "text": "what is six plus three"}))
        events, done = collect_turn(ws)
        assert events[0]["input"] == "text" and done["history_turns"] == 2 and "nine" in done["text"]
        assert any(e["type"] == "audio" for e in events)
        ws.send_text(json.dumps({"type": "text", "text": "what is two plus two"}))
        _, done = collect_turn(ws)
        assert done["history_turns"] == LIMITS.max_history_turns  # the cap: the oldest turn went
        ws.send_text(json.dumps({"type": "reset"}))
        assert ws.receive_json() == {"type": "reset"}
        ws.send_bytes(question_bytes)
        _, done = collect_turn(ws)
        assert done["history_turns"] == 1 and done["turn"] == 4
    assert client.get("/health").json()["sessions"] == 0


def test_websocket_bad_messages_get_errors_and_the_session_goes_on(client, question_bytes):
    with client.websocket_connect("/v1/talk") as ws:
        assert ws.receive_json()["type"] == "ready"
        for send, code, words in [
            (lambda: ws.send_text("{oops"), 400, "not JSON"),
            (lambda: ws.send_text(json.dumps({"type": "dance"})), 400, "unknown message type 'dance'"),
            (lambda: ws.send_text(json.dumps(["text"])), 400, "unknown message type None"),
            (lambda: ws.send_text(json.dumps({"type": "text"})), 400, '"text" string'),
            (lambda: ws.send_text(json.dumps({"type": "text", "text": "  "})), 400, "empty text"),
            (lambda: ws.send_text(json.dumps({"type": "settings", "settings": {"steps": 99}})), 400, "steps (99)"),
            (lambda: ws.send_text(json.dumps({"type": "settings", "settings": {"top_k": 1.5}})), 400, "whole number"),
            (lambda: ws.send_text(json.dumps({"type": "settings", "settings": 3})), 400, "JSON object"),
            (lambda: ws.send_text(json.dumps({"type": "settings", "settings": {"final_span": 1}})), 400,
             "'final_span' must be one of cached, official, got 1"),
            (lambda: ws.send_bytes(b"GIF89a not audio"), 400, "not an audio file"),
            (lambda: ws.send_bytes(b"\0" * 200_001), 413, "limit is 200000 bytes"),
            (lambda: ws.send_bytes(silent_wav()), 400, "silent"),
        ]:
            send()
            event = ws.receive_json()
            assert event["type"] == "error" and event["code"] == code and words in event["message"], event
        ws.send_bytes(question_bytes)
        ws.send_bytes(question_bytes)  # a second turn while the first runs is refused, the first goes on
        first = ws.receive_json()
        events = [first] if first["type"] != "error" else []
        refused = first if first["type"] == "error" else None
        while True:
            event = ws.receive_json()
            if event["type"] == "error":
                refused = event
                continue
            if event["type"] == "done":
                break
            events.append(event)
        assert refused is not None and refused["code"] == 409 and "already in progress" in refused["message"]
        assert normalize(event["text"]).split()[-1] == "nine" and event["history_turns"] == 1
    assert client.get("/health").json()["sessions"] == 0


def test_websocket_sessions_are_capped(client):
    from contextlib import ExitStack

    from starlette.websockets import WebSocketDisconnect

    with ExitStack() as stack:
        for _ in range(LIMITS.max_sessions):
            assert stack.enter_context(client.websocket_connect("/v1/talk")).receive_json()["type"] == "ready"
        assert client.get("/health").json()["sessions"] == LIMITS.max_sessions
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect("/v1/talk") as ws:
            ws.receive_json()
        assert refused.value.code == 1013 and "server busy" in refused.value.reason
    assert client.get("/health").json()["sessions"] == 0
    with client.websocket_connect("/v1/talk") as ws:  # a place is free again
        assert ws.receive_json()["type"] == "ready"
