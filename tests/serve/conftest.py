"""One shipped model for every serve test (loading takes seconds), and the shipped spoken question."""
from __future__ import annotations

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
def question_bytes() -> bytes:
    return QUESTION_WAV.read_bytes()
