"""One shipped model for every serve test (loading takes seconds), and the shipped spoken question."""
from __future__ import annotations

from pathlib import Path

import pytest

from ttt.speech import default_model_dir

QUESTION_WAV = default_model_dir().parent / "demo" / "question.wav"  # "what is six plus three"


@pytest.fixture(scope="session")
def speech_lm():
    """The shipped default model, the one `ttt serve` loads without --model."""
    if not (default_model_dir() / "ttt_config.json").is_file():
        pytest.skip("the default model is not shipped in src/ttt/assets/model")
    import torch

    from ttt.speech import SpeechLM

    torch.set_num_threads(1)
    lm = SpeechLM.from_dir()
    lm.warm_up()
    return lm


@pytest.fixture(scope="session")
def question_wav() -> Path:
    return QUESTION_WAV


@pytest.fixture(scope="session")
def question_bytes() -> bytes:
    return QUESTION_WAV.read_bytes()


@pytest.fixture(scope="session")
def live_server(speech_lm):
    """The app under a real uvicorn on a free loopback port, in a thread: (base URL, app)."""
    pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'text-to-talk[serve]'")
    import socket
    import threading
    import time

    import uvicorn

    from ttt.serve.app import ServeLimits, create_app

    limits = ServeLimits(max_upload_bytes=1_000_000, max_sessions=16)
    app = create_app(speech_lm, limits)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws_max_size=limits.max_upload_bytes + 1024 * 1024))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)
