"""`ttt import-official`: a checkpoint laid out as the released TtT-3B (Qwen2.5 vocabulary, <|audio|> at 151684,
codes from 151685, mask 168069, then the two span closers) becomes a TtT model this engine decodes."""
import json
from pathlib import Path

import pytest
import torch

from helpers import SHARED
from ttt.official import check_layout, import_official

QWEN_TEXT = 151643  # byte-level BPE entries of Qwen2.5
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|qwen_reserved_{i}|>" for i in range(19)]
GLM_SPECIALS = ["<|begin_of_audio|>", "<|end_of_audio|>", "<|begin_of_quad|>"] + [f"<|glm_extra_{i}|>" for i in range(16)]
CODES = 16384


def official_tokenizer(codes: int = CODES, text: int = QWEN_TEXT, skip_code: int | None = None):
    """A byte-level BPE tokenizer with the official checkpoint's added-token order (filler names where the
    release's tokens play no part in TtT)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    vocab.update({f"filler{i}": i for i in range(len(vocab), text)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.add_tokens(QWEN_SPECIALS + GLM_SPECIALS + ["<|audio|>"], special_tokens=True)
    fast.add_tokens([f"<|audio_{c}|>" for c in range(codes) if c != skip_code], special_tokens=True)
    fast.add_tokens(["<|mask_token|>", "<|end_of_audio_new|>", "<|end_of_audio_span_last|>"], special_tokens=True)
    return fast


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory):
    """A tiny random Qwen2 saved as the official checkpoint: forked config fields, auto_map to a modeling file
    that fails if anything imports it."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    root = tmp_path_factory.mktemp("official")
    tok = official_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         tie_word_embeddings=True)
    Qwen2ForCausalLM(config).save_pretrained(root)
    tok.save_pretrained(root)
    raw = json.loads((root / "config.json").read_text())
    raw.update(architectures=["Qwen2ForARDiffLM"], auto_map={"AutoModelForCausalLM": "modeling_qwen_TtT.Qwen2ForARDiffLM"},
               mask_token=tok.convert_tokens_to_ids("<|mask_token|>"),
               audio_token_id_start=tok.convert_tokens_to_ids("<|audio|>"), unmasked_audio_prob=0.3)
    (root / "config.json").write_text(json.dumps(raw))
    (root / "modeling_qwen_TtT.py").write_text("raise ImportError('the forked modeling file must never run')\n")
    return root


def test_the_official_layout_imports_at_the_official_ids(official_dir, tmp_path):
    from ttt.model import TtTModel

    out = tmp_path / "ttt"
    summary = import_official(official_dir, out, codec="glm4voice:/some/tokenizer")
    assert summary["layout"] == {"audio_start": 151685, "codebook_size": CODES, "mask": 168069, "marker": 151684,
                                 "vocab_size": 168072, "embedding_rows": 168072}
    model = TtTModel.from_pretrained(out)
    v = model.vocab
    assert (v.audio_start, v.codebook_size, v.mask, v.end_of_span, v.end_of_last_span) == (151685, CODES, 168069,
                                                                                            168070, 168071)
    assert v.begin_of_audio < 151684 and v.im_end < 151684  # text side of the official boundary
    assert (model.config.text_chunk, model.config.audio_chunk) == (13, 26)
    assert json.loads((out / "codec.json").read_text()) == {"codec": "glm4voice:/some/tokenizer"}
    assert json.loads((out / "decoding.json").read_text()) == {"block_length": 26, "steps": 2, "cfg_scale": 0.1,
                                                              "cfg_context": "all"}
    from ttt.config import load_decoding

    assert load_decoding(out)["cfg_context"] == "all"  # read back through the validating reader
    sample_file = SHARED / "reference" / "official_ttt_asr_samples.json"
    if sample_file.is_file():  # the ASR prompt is the authors' own
        asr_prompt = json.loads(sample_file.read_text())[0]["messages"][0]["content"]
        assert json.loads((out / "prompts.json").read_text())["asr"] == asr_prompt
    from safetensors.torch import load_file

    source = load_file(str(official_dir / "model.safetensors"))
    mine = model.backbone.state_dict()
    assert all(torch.equal(source[k], mine[k]) for k in source)  # the weights, unchanged


def test_imported_model_encodes_official_data_and_decodes_with_its_cache(official_dir, tmp_path):
    from ttt.generate import generate
    from ttt.model import TtTModel

    out = tmp_path / "ttt"
    import_official(official_dir, out, codec=None)
    assert not (out / "codec.json").exists()
    model = TtTModel.from_pretrained(out).eval()
    sample_file = SHARED / "reference" / "official_ttt_asr_samples.json"
    if sample_file.is_file():  # the authors' own sample: every token at its official id
        sample = json.loads(sample_file.read_text())[0]
        enc = model.encode({"messages": [{k: m[k] for k in ("role", "content")} for m in sample["messages"]]})
        first = int(sample["messages"][1]["content"].split("<|audio_")[1].split("|>")[0])
        assert 151685 + first in enc.input_ids.tolist()
    messages = [{"role": "system", "content": "Read the text aloud."}, {"role": "user", "content": "hi"}]
    settings = dict(max_new_tokens=80, block_length=26, steps=2, max_last_span=26, force_text="hello there")
    cached = generate(model, messages, use_cache=True, **settings)
    plain = generate(model, messages, use_cache=False, **settings)
    codes = [c for span in cached.audio_spans for c in span]
    assert codes and all(0 <= c < CODES for c in codes)
    assert cached.audio_spans == plain.audio_spans and cached.text == plain.text


def test_layout_errors_name_the_ids():
    small = official_tokenizer(codes=8, text=300)
    good = {"mask_token": small.convert_tokens_to_ids("<|mask_token|>"), "vocab_size": len(small)}
    assert check_layout(small, good).codebook_size == 8
    with pytest.raises(ValueError, match="mask_token = 5 but the tokenizer has <\\|mask_token\\|> at"):
        check_layout(small, {**good, "mask_token": 5})
    with pytest.raises(ValueError, match="vocab_size 10 is smaller"):
        check_layout(small, {**good, "vocab_size": 10})
    with pytest.raises(ValueError, match="audio_token_id_start .* lies above"):
        check_layout(small, {**good, "audio_token_id_start": len(small) - 1})
    gap = official_tokenizer(codes=8, text=300, skip_code=3)
    with pytest.raises(ValueError, match="<\\|audio_3\\|> is"):
        check_layout(gap, {"vocab_size": len(gap)})


def test_not_a_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        import_official(tmp_path, tmp_path / "out")


def test_cli_registers_import_official():
    from ttt.cli import build_parser

    args = build_parser().parse_args(["import-official", "a", "b", "--codec", "none"])
    assert (args.source, args.out, args.codec) == ("a", "b", "none") and args.func.__module__ == "ttt.cli.model"


def test_speech_lm_takes_the_codec_the_model_directory_names(official_dir, tmp_path):
    from ttt.audio.codec import default_codec_dir
    from ttt.speech import SpeechLM

    import_official(official_dir, tmp_path / "ttt", codec=str(default_codec_dir()))  # 1,024 codes: not the model's
    with pytest.raises(ValueError, match="model expects 16384 audio codes but the codec has 1024"):
        SpeechLM.from_dir(tmp_path / "ttt")
    (tmp_path / "ttt" / "codec.json").unlink()
    (tmp_path / "ttt" / "prompts.json").write_text(json.dumps({"sing": "la"}))
    with pytest.raises(ValueError, match="prompts.json: unknown tasks \\['sing'\\]"):
        SpeechLM.from_dir(tmp_path / "ttt", codec_dir=str(default_codec_dir()))


def test_ttt_asr_runs_an_imported_checkpoint_with_the_glm4voice_tokenizer_it_names(official_dir, tmp_path, capsys):
    """The offline stand-in for talking to the released model: official layout + GLM-4-Voice tokenizer layout,
    both tiny and random, through the same commands a user runs (so the transcript itself is noise)."""
    import numpy as np
    import soundfile as sf

    from pretrained_checkpoints import glm_checkpoint
    from ttt.cli import main

    tokenizer = glm_checkpoint(tmp_path / "glm", codebook=CODES)
    assert main(["import-official", str(official_dir), str(tmp_path / "ttt"), "--codec", f"glm4voice:{tokenizer}"]) == 0
    capsys.readouterr()
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "q.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)
    assert main(["asr", str(tmp_path / "q.wav"), "--model", str(tmp_path / "ttt"), "--device", "cpu"]) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (--device cuda runs the model in bfloat16)")
def test_an_imported_checkpoint_transcribes_on_the_gpu(official_dir, tmp_path):
    import numpy as np

    from pretrained_checkpoints import glm_checkpoint
    from ttt.speech import SpeechLM

    import_official(official_dir, tmp_path / "ttt", codec=f"glm4voice:{glm_checkpoint(tmp_path / 'glm', codebook=CODES)}")
    lm = SpeechLM.from_dir(tmp_path / "ttt", device="cuda", max_new_tokens=40)
    assert lm.model.device.type == "cuda" and lm.model.backbone.dtype == torch.bfloat16
    t = np.arange(16000) / 16000
    assert isinstance(lm.transcribe((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000), str)
    from ttt.generate import generate  # speech out needs a decoder trained for GLM codes: check the codes only

    result = generate(lm.model, lm._messages("tts", "hi"), force_text="hello there", max_new_tokens=80,
                      block_length=26, steps=2, max_last_span=26)
    codes = [c for span in result.audio_spans for c in span]
    assert codes and all(0 <= c < CODES for c in codes)  # diffusion spans on the GPU with the KV cache


@pytest.mark.skipif(not Path("/usr/share/pocketsphinx/test/data/librivox/transcription").is_file(),
                    reason="Debian package pocketsphinx-testdata (real LibriVox clips) not installed")
def test_fine_tune_an_imported_checkpoint_on_imported_speech(official_dir, tmp_path):
    """docs/byo.md's fine-tuning recipe offline: real clips -> GLM-4-Voice codes chunked in the official
    tokenizer's tokens -> `ttt train --init-from` the imported model, two steps."""
    import re
    import shutil

    from pretrained_checkpoints import glm_checkpoint
    from ttt.cli import main

    librivox = Path("/usr/share/pocketsphinx/test/data/librivox")
    chapter = tmp_path / "libri" / "1" / "2"
    chapter.mkdir(parents=True)
    lines = []
    for text, utt in re.findall(r"<s> (.*) </s> \((\S+)\)", (librivox / "transcription").read_text()):
        shutil.copy(librivox / f"{utt}.wav", chapter / f"1-2-{utt[-4:]}.wav")
        lines.append(f"1-2-{utt[-4:]} {text}")
    (chapter / "1-2.trans.txt").write_text("\n".join(lines) + "\n")
    codec = f"glm4voice:{glm_checkpoint(tmp_path / 'glm', codebook=CODES)}"
    assert main(["import-official", str(official_dir), str(tmp_path / "ttt"), "--codec", codec]) == 0
    data = tmp_path / "data"
    assert main(["data", "import", str(tmp_path / "libri"), "--out", str(data), "--tokenizer", str(official_dir),
                 "--codec", codec]) == 0
    assert json.loads((data / "build_card.json").read_text())["codebook_size"] == CODES
    assert main(["train", "--init-from", str(tmp_path / "ttt"), "--set", f"data.train={data / 'train.jsonl'}",
                 "--set", "data.valid=null", "--set", "data.valid_fraction=0.2", "--out", str(tmp_path / "run"),
                 "--max-steps", "2", "--batch-size", "2", "--precision", "fp32"]) == 0
    steps = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r][-1] == 2
