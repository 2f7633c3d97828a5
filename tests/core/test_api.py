"""The public API: `from ttt import ...` gives the functions and classes the README shows."""
import subprocess
import sys

import pytest


def test_public_names_are_the_functions_and_classes():
    import ttt.generate as _  # noqa: F401  the submodule imported first must not shadow the function
    from ttt import GenerationConfig, SpeechLM, TtTConfig, TtTModel, generate, load_codec, stream
    from ttt.audio.codec import load_codec as codec_loader
    from ttt.generate import generate as generate_fn, stream as stream_fn
    from ttt.speech import SpeechLM as speech_lm

    assert generate is generate_fn and stream is stream_fn and callable(generate)
    assert SpeechLM is speech_lm and load_codec is codec_loader
    assert {TtTModel.__name__, TtTConfig.__name__, GenerationConfig.__name__} == {"TtTModel", "TtTConfig", "GenerationConfig"}


def test_generate_is_the_function_in_a_fresh_process():
    """`from ttt import generate` first, then the submodule: still the function (the README's example)."""
    code = ("from ttt import generate, stream, SpeechLM\nimport ttt.generate\nimport ttt\n"
            "assert callable(generate) and generate.__name__ == 'generate' and ttt.generate is generate\n"
            "assert stream.__name__ == 'stream' and isinstance(SpeechLM, type)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_is_an_attribute_error():
    import ttt

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ttt.nope


@pytest.mark.parametrize("field, value, message", [
    ("steps", -3, "steps must be positive"),
    ("block_length", 0, "block_length must be positive"),
    ("top_p", 0.0, "top_p"),
    ("stop_threshold", 1.5, "stop_threshold must be in"),
    ("max_new_tokens", 0, "max_new_tokens"),
])
def test_generation_config_validates_on_construction(field, value, message):
    from ttt import GenerationConfig

    with pytest.raises(ValueError, match=message):
        GenerationConfig(**{field: value})


def test_generation_config_check_needs_the_model_block():
    from ttt import GenerationConfig

    GenerationConfig(steps=13, block_length=26).check(audio_chunk=26)
    with pytest.raises(ValueError, match="each step must commit at least one token"):
        GenerationConfig(steps=20, block_length=26).check(audio_chunk=13)
