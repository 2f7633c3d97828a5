"""Statistics of the noising (masking rate, BANOM, PPM, SST), reproducibility and the baseline modes."""
import torch

from helpers import chat_example
from ttt.format import Modality
from ttt.training.collate import collate_for


def _batches(model, examples, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [collate_for(model, examples, train=True, generator=gen) for _ in range(n)]


def _audio(batch):
    return batch["trainable"] & ((batch["modality"] == Modality.AUDIO_SPAN) | (batch["modality"] == Modality.LAST_SPAN))


def test_masked_fraction_tracks_t(make_model):
    model = make_model(unmasked_audio_prob=0.0, prefix_preservation_ratio=0.0, quad_span_truncation_prob=0.0)
    errors, ps = [], []
    for batch in _batches(model, [chat_example(n_spans=8, last=60)] * 4, 25):
        audio = _audio(batch)
        for row in range(audio.shape[0]):
            p = batch["p_mask"][row][audio[row]][0].item()
            frac = batch["masked"][row][audio[row]].float().mean().item()
            errors.append(frac - p)
            ps.append(p)
            assert int(batch["n_maskable"][row]) == int(audio[row].sum())
        assert not (batch["masked"] & ~audio).any(), "only assistant audio (codes + closers) may be masked"
        assert torch.equal(batch["input_ids"][batch["masked"]], torch.full((int(batch["masked"].sum()),), model.vocab.mask))
        assert torch.equal(batch["input_ids"][~batch["masked"]], batch["labels"][~batch["masked"]])
    errors = torch.tensor(errors)
    assert errors.abs().mean() < 0.05 and abs(errors.mean()) < 0.02
    assert 0.4 < sum(ps) / len(ps) < 0.6 and min(ps) < 0.1 and max(ps) > 0.9  # t ~ U(eps, 1]


def test_banom_rate_and_clean_batches_have_no_audio_loss(make_model):
    model = make_model(unmasked_audio_prob=0.3, quad_span_truncation_prob=0.0)
    batches = _batches(model, [chat_example()] * 2, 400)
    clean = [b for b in batches if not b["masked"].any()]
    assert abs(len(clean) / 400 - 0.3) < 0.06
    out = model(**clean[0], return_logits=False)
    assert out.audio_loss.item() == 0.0 and out.text_loss.item() > 0


def test_ppm_keeps_audio_before_a_chosen_span_clean(make_model):
    model = make_model(unmasked_audio_prob=0.0, prefix_preservation_ratio=0.3, quad_span_truncation_prob=0.0)
    preserved = 0
    n = 0
    for batch in _batches(model, [chat_example(n_spans=2, last=9)] * 8, 60):
        audio = _audio(batch)
        for row in range(audio.shape[0]):
            n += 1
            spans = batch["span_ids"][row][audio[row]].unique()
            starts = [int((batch["span_ids"][row] == s).nonzero().min()) for s in spans]
            maskable = int(batch["n_maskable"][row])
            tails = [int((audio[row] & (torch.arange(audio.shape[1]) >= s)).sum()) for s in starts]
            assert maskable in tails, "the maskable audio must be everything from one span's start on"
            start = starts[tails.index(maskable)]
            assert not batch["masked"][row, :start].any(), "PPM must never mask audio before the chosen span"
            preserved += maskable < tails[0]
    assert abs(preserved / n - 0.3 * 2 / 3) < 0.06  # 3 spans: choosing the first preserves nothing


def test_sst_rate_and_truncation(make_model):
    model = make_model(unmasked_audio_prob=1.0, quad_span_truncation_prob=0.5)
    full = model.encode(chat_example(n_spans=1, last=50))
    lengths = []
    for batch in _batches(model, [chat_example(n_spans=1, last=50)], 300):
        ids = batch["input_ids"][0]
        lengths.append(ids.numel())
        if ids.numel() < len(full):
            kept = int((batch["modality"][0] == Modality.LAST_SPAN).sum())
            assert 15 <= kept <= 45
            assert int(ids[-1]) != model.vocab.end_of_last_span and model.vocab.is_code(ids[-1:]).all()
        else:
            assert torch.equal(ids, full.input_ids)
    assert abs(sum(n < len(full) for n in lengths) / 300 - 0.5) < 0.08


def test_sst_can_keep_the_closing_token(make_model):
    model = make_model(unmasked_audio_prob=1.0, quad_span_truncation_prob=1.0, sst_keep_closing_token=True)
    full = model.encode(chat_example(n_spans=1, last=50))
    ids = collate_for(model, [chat_example(n_spans=1, last=50)], generator=torch.Generator().manual_seed(0))["input_ids"][0]
    assert ids.numel() < len(full)
    assert torch.equal(ids[-3:], full.input_ids[-3:])  # closer, <|im_end|>, newline survive


def test_seeded_collation_is_reproducible(make_model):
    model = make_model()
    a = _batches(model, [chat_example(), chat_example(1, 30)], 5, seed=7)
    b = _batches(model, [chat_example(), chat_example(1, 30)], 5, seed=7)
    for x, y in zip(a, b):
        assert all(torch.equal(x[k], y[k]) for k in x)
    c = _batches(model, [chat_example(), chat_example(1, 30)], 5, seed=8)
    assert any(not torch.equal(x["input_ids"], y["input_ids"]) or not torch.equal(x["masked"], y["masked"]) for x, y in zip(a, c))


def test_ar_mode_is_fully_causal_and_trains_audio_next_token(make_model):
    model = make_model(mode="ar")
    batch = collate_for(model, [chat_example()], train=True)
    assert not batch["masked"].any() and not batch["span_ids"].any()
    out = model(**batch)
    assert out.audio_loss.item() == 0.0 and out.text_loss > 0


def test_nar_mode_diffuses_the_whole_response(make_model):
    model = make_model(mode="nar")
    batches = _batches(model, [chat_example()], 20)
    for batch in batches:
        train = batch["trainable"][0]
        assert batch["span_ids"][0][train].unique().numel() == 1 and bool((batch["span_ids"][0][train] > 0).all())
        assert not (batch["masked"] & ~batch["trainable"]).any()
    assert any((batch["masked"] & (batch["modality"] == Modality.TEXT)).any() for batch in batches)
    out = model(**batches[0])
    assert out.text_loss.item() == 0.0 and out.audio_loss > 0


def test_final_span_is_padded_with_loss_free_masks_in_noised_batches(make_model):
    model = make_model(unmasked_audio_prob=0.3, quad_span_truncation_prob=0.0, last_span_pad=25)
    v = model.vocab
    counts, clean = [], 0
    for batch in _batches(model, [chat_example(n_spans=1, last=9)], 200):
        mod, ids, span = batch["modality"][0], batch["input_ids"][0], batch["span_ids"][0]
        pads = (mod == Modality.SPAN_PAD).nonzero().flatten()
        closer = int((batch["labels"][0] == v.end_of_last_span).nonzero())
        if not batch["masked"].any() and batch["p_mask"].eq(1).all():
            clean += 1
            assert pads.numel() == 0, "BANOM batches show the span exactly as inference commits it"
            continue
        counts.append(pads.numel())
        if pads.numel():
            assert pads.tolist() == list(range(closer + 1, closer + 1 + pads.numel()))
            assert bool((ids[pads] == v.mask).all()) and bool((span[pads] == span[closer]).all())
            assert not batch["masked"][0, pads].any() and not batch["trainable"][0, pads].any()
            assert int(ids[pads[-1] + 1]) == v.im_end
    assert 40 < clean < 80 and min(counts) == 0 and max(counts) >= 20
    assert abs(sum(counts) / len(counts) - 12.5) < 2.5



def test_nar_responses_are_padded_with_trained_end_tokens_in_one_run(make_model):
    model = make_model(mode="nar", unmasked_audio_prob=0.0, last_span_pad=25)
    v = model.vocab
    ex = chat_example(n_spans=1, last=9)
    plain = collate_for(model, [ex], train=False)
    counts = []
    for batch in _batches(model, [ex], 100):
        n = batch["input_ids"].shape[1] - plain["input_ids"].shape[1]
        counts.append(n)
        if n == 0:
            continue
        trained = batch["trainable"][0].nonzero().flatten()
        assert trained.tolist() == list(range(int(trained[0]), int(trained[-1]) + 1)), "one contiguous response"
        assert batch["span_ids"][0, trained].unique().numel() == 1, "pads join the response's bidirectional run"
        assert batch["labels"][0, trained[-n - 1 :]].eq(v.im_end).all()
        assert batch["labels"][0, trained[: -n]].tolist() == plain["labels"][0, plain["trainable"][0]].tolist()
    assert min(counts) == 0 and max(counts) >= 20


def test_closing_token_still_predicts_what_follows_the_pads(make_model):
    from ttt.model import _next_real_position

    pad = torch.tensor([[False, False, True, True, False, False]])
    assert _next_real_position(pad).tolist() == [[1, 4, 4, 4, 5, 6]]
    padded = make_model(unmasked_audio_prob=0.0, quad_span_truncation_prob=0.0, prefix_preservation_ratio=0.0)
    clean = make_model(unmasked_audio_prob=1.0, quad_span_truncation_prob=0.0)
    ex = chat_example(n_spans=1, last=9)
    for seed in range(20):
        b = collate_for(padded, [ex], generator=torch.Generator().manual_seed(seed))
        if (b["modality"] == Modality.SPAN_PAD).any():
            break
    c = collate_for(clean, [ex], train=False)
    nothing = torch.zeros_like(b["masked"])
    text_b, target_b = padded.targets(b["labels"], b["modality"], b["doc_ids"], b["trainable"], nothing)
    text_c, target_c = clean.targets(c["labels"], c["modality"], c["doc_ids"], c["trainable"], torch.zeros_like(c["masked"]))
    assert target_b[text_b].tolist() == target_c[text_c].tolist()
    closer = int((b["labels"][0] == padded.vocab.end_of_last_span).nonzero())
    assert bool(text_b[0, closer]) and int(target_b[0, closer]) == padded.vocab.im_end
