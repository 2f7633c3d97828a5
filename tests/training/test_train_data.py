"""Data loading (JSONL, JSON list, official sample file), file:line errors, skipping, the batch sampler."""
import json
import logging

import pytest

from train_toy import example, write_toy
from ttt.config import TtTConfig
from ttt.training.data import (BatchSampler, check_build_card, encode_records, load_encoded, micro_batches, noise_generator,
                      plain_texts, read_records, split_off)


def test_jsonl_and_json_list_load_the_same_examples(tmp_path, make_model):
    model = make_model()
    jsonl = write_toy(tmp_path / "a.jsonl", 5)
    records = read_records(jsonl)
    as_list = tmp_path / "a.json"
    as_list.write_text(json.dumps([r.example for r in records], indent=2))
    from_list = read_records(as_list)
    assert [r.example for r in from_list] == [r.example for r in records]
    assert [r.where for r in records] == [f"{jsonl}:{n}" for n in range(1, 6)]
    lines = as_list.read_text().splitlines()
    for rec in from_list:
        line = int(rec.where.rsplit(":", 1)[1])
        assert lines[line - 1].strip() == "{", "a JSON item is located at its opening line"
    encoded = load_encoded(model, as_list)
    assert [e.input_ids.tolist() for e in encoded] == [model.encode(r.example).input_ids.tolist() for r in records]


def test_official_sample_file_loads_unchanged(official_samples, make_model):
    from helpers import SHARED

    path = SHARED / "reference" / "official_ttt_asr_samples.json"
    model = make_model(codebook=16384)
    encoded = load_encoded(model, path)
    assert len(encoded) == len(official_samples) == 2
    assert encoded[0].meta["where"] == f"{path}:2"
    texts = list(plain_texts(read_records(path)))
    assert texts and not any("<|" in t for t in texts)


def test_bad_json_names_file_and_line(tmp_path):
    path = write_toy(tmp_path / "bad.jsonl", 3)
    lines = path.read_text().splitlines()
    lines.insert(1, '{"messages": [')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"{path}:2: invalid JSON"):
        read_records(path)
    assert [r.where for r in read_records(path, skip_malformed=True)] == [f"{path}:{n}" for n in (1, 3, 4)]
    broken = tmp_path / "bad.json"
    broken.write_text('[\n  {"text": "a"},\n  {"text": "b"\n  }}\n]')
    with pytest.raises(ValueError, match=rf"{broken}:4:"):
        read_records(broken)
    not_list = tmp_path / "obj.json"
    not_list.write_text('{"text": "a"}')
    with pytest.raises(ValueError, match="expected a JSON list"):
        read_records(not_list)


def test_malformed_example_error_names_file_line_and_position(tmp_path, make_model, caplog):
    import random

    model = make_model()
    rows = [example(random.Random(i)) for i in range(4)]
    rows[2]["messages"][1]["content"] += "<|audio_999|>"
    rows[3] = {"messages": []}
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=rf"^{path}:3: example 2, message 1 \(assistant\), char \d+: audio code 999"):
        load_encoded(model, path)
    with caplog.at_level(logging.WARNING, logger="ttt.training.data"):
        encoded = load_encoded(model, path, skip_malformed=True)
    assert len(encoded) == 2
    assert "skipped 2 malformed example(s) of 4" in caplog.text
    with pytest.raises(ValueError, match="no usable examples"):
        encode_records(model, read_records(path)[2:], skip_malformed=True)
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "missing.jsonl")


def test_hf_datasets_directory(tmp_path, make_model):
    import random

    datasets = pytest.importorskip("datasets")
    pa = pytest.importorskip("pyarrow")
    rows = [example(random.Random(i)) for i in range(3)] + [{"text": "what is two plus two"}]
    columns = {"messages": [r.get("messages") for r in rows], "text": [r.get("text") for r in rows]}
    table = datasets.Dataset(pa.Table.from_pydict(columns), fingerprint="toy")
    datasets.DatasetDict({"train": table}).save_to_disk(str(tmp_path / "ds"))
    records = read_records(tmp_path / "ds", split="train")
    assert [r.example for r in records] == rows, "columns absent from a row (None in Arrow) are dropped"
    assert records[3].where == f"{tmp_path / 'ds'}[train]#3"
    assert len(load_encoded(make_model(), tmp_path / "ds")) == 4
    with pytest.raises(ValueError, match="no split 'test'"):
        read_records(tmp_path / "ds", split="test")


def test_sampler_is_seeded_bucketed_and_resumable():
    lengths = [10 * (i % 7) + i % 3 for i in range(50)]
    s = BatchSampler(lengths, batch_size=4, seed=1, bucket_pools=3)
    first = [s.next_batch() for _ in range(30)]  # crosses two epoch boundaries (12 batches each)
    assert s.epoch == 2 and len(s) == 12
    seen = sorted(i for b in first[:12] for i in b)
    assert len(set(seen)) == 48, "one epoch visits every example at most once"
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first) / len(first)
    assert spread < 20, f"bucketing should group similar lengths (mean spread {spread})"
    again = BatchSampler(lengths, batch_size=4, seed=1, bucket_pools=3)
    for _ in range(17):
        again.next_batch()
    state = json.loads(json.dumps(again.state_dict()))
    resumed = BatchSampler(lengths, batch_size=4, seed=1, bucket_pools=3)
    resumed.load_state_dict(state)
    assert [resumed.next_batch() for _ in range(13)] == first[17:]
    assert BatchSampler(lengths, 4, seed=2).next_batch() != BatchSampler(lengths, 4, seed=1).next_batch()
    with pytest.raises(ValueError, match="seed 1, batch size 4"):
        BatchSampler(lengths, 8, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="exceeds"):
        BatchSampler(lengths[:3], 4, seed=1)


def test_micro_batches_noise_generators_and_split():
    assert micro_batches([1, 2, 3, 4, 5, 6], 3) == [[1, 2], [3, 4], [5, 6]]
    with pytest.raises(ValueError, match="equal micro-batches"):
        micro_batches([1, 2, 3], 2)
    a, b = noise_generator(0, 5, 1), noise_generator(0, 5, 1)
    assert a.initial_seed() == b.initial_seed() != noise_generator(0, 5, 2).initial_seed()
    train, valid = split_off(list(range(20)), 0.25, seed=3)
    assert len(valid) == 5 and sorted(train + valid) == list(range(20))
    assert split_off(list(range(20)), 0.25, seed=3) == (train, valid)


def test_build_card_must_match_the_model_chunking(tmp_path):
    data = tmp_path / "train.jsonl"
    check_build_card(data, TtTConfig())  # no card: nothing to check
    (tmp_path / "build_card.json").write_text(json.dumps({"text_chunk": 4, "audio_chunk": 26, "codebook_size": 1024}))
    check_build_card(data, TtTConfig(audio_codebook_size=1024, text_chunk=4))
    with pytest.raises(ValueError, match="text_chunk=4, but the model has text_chunk=13"):
        check_build_card(data, TtTConfig(audio_codebook_size=1024))
    with pytest.raises(ValueError, match="audio_codebook_size: 1024"):
        check_build_card(data, TtTConfig(audio_codebook_size=512, text_chunk=4))
