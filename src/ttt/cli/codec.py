"""`ttt codec ...`: train the built-in codec, and encode / decode / round-trip files with any saved codec."""
from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    codec = subparsers.add_parser("codec", help="train or run the audio codec (speech <-> discrete codes)")
    sub = codec.add_subparsers(dest="codec_command", metavar="ACTION", required=True)

    train = sub.add_parser("train", help="fit the codebook on all voices and the decoder on the target voice")
    train.add_argument("--data", nargs="+", required=True, metavar="AUDIO_JSONL", help="audio_*.jsonl files ({'audio', 'text', 'voice'} rows)")
    train.add_argument("--out", required=True, type=Path, help="folder to write config.json + model.safetensors")
    train.add_argument("--features", choices=["whisper", "logmel"], default="whisper")
    train.add_argument("--pool", type=int, default=2, help="50 Hz frames per code (2 -> 25 codes/s, the shipped codec's; 4 -> 12.5)")
    train.add_argument("--codebook-size", type=int, default=1024)
    train.add_argument("--steps", type=int, default=2000, help="decoder training steps")
    train.add_argument("--target-voice", default="piper", help="voice-name prefix the decoder renders")
    train.add_argument("--max-utterances", type=int, default=4000, help="cap per stage (k-means, decoder)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--encoder", metavar="TYPE:SOURCE|DIR",
                       help="keep this codec's encoder (glm4voice:DIR, mimi:DIR, a hub id, or a saved built-in codec "
                            "folder such as the shipped one, whose codebook then stays as it is) and train only a "
                            "decoder for its codes (--target-voice '' trains on every row)")
    train.add_argument("--decoder-dim", type=int, default=256, help="decoder width (the shipped codec's: 256)")
    train.add_argument("--decoder-layers", type=int, default=4,
                       help="decoder blocks at the code rate (the shipped codec's: 4; each sees 4 codes further)")
    train.add_argument("--device", default="cpu", help="where the decoder trains, e.g. cuda (default: cpu)")
    train.add_argument("--warm-start", action="store_true",
                       help="with a built-in --encoder: start from its decoder's weights instead of random ones")
    train.set_defaults(func=_train)

    encode = sub.add_parser("encode", help="print the codes of an audio file")
    encode.add_argument("file", type=Path)
    encode.add_argument("--codec", help="saved codec folder or TYPE:SOURCE (default: the shipped codec)")
    encode.set_defaults(func=_encode)

    decode = sub.add_parser("decode", help="render codes to a wav file")
    decode.add_argument("--codes", required=True, help="codes separated by spaces/commas, or @FILE to read them from a file")
    decode.add_argument("-o", "--output", required=True, type=Path)
    decode.add_argument("--codec", help="saved codec folder or TYPE:SOURCE (default: the shipped codec)")
    decode.set_defaults(func=_decode)

    roundtrip = sub.add_parser("roundtrip", help="encode then decode a file (to hear what the codec keeps)")
    roundtrip.add_argument("file", type=Path)
    roundtrip.add_argument("-o", "--output", required=True, type=Path)
    roundtrip.add_argument("--codec", help="saved codec folder or TYPE:SOURCE (default: the shipped codec)")
    roundtrip.set_defaults(func=_roundtrip)


def _codec(spec: str | None):
    from ttt.audio.codec import open_codec

    return open_codec(spec)


def parse_codes(text: str) -> list[int]:
    """'1 2 3', '1,2,3' or '[1, 2, 3]' -> [1, 2, 3]; '@file' reads the text from a file."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    tokens = [t for t in re.split(r"[\s,\[\]]+", text) if t]
    try:
        return [int(t) for t in tokens]
    except ValueError as err:
        raise ValueError(f"codes must be integers: {err}") from err


def _train(args: argparse.Namespace) -> int:
    from ttt.audio.fit import CodecFitConfig, train_codec
    from ttt.speech import torch_device

    torch_device(args.device)  # a one-line error before any audio is read

    config = CodecFitConfig(
        features=args.features,
        pool=args.pool,
        codebook_size=args.codebook_size,
        steps=args.steps,
        target_voice=args.target_voice,
        max_kmeans_utterances=args.max_utterances,
        max_decoder_utterances=args.max_utterances,
        seed=args.seed,
        device=args.device,
        dim=args.decoder_dim,
        code_layers=args.decoder_layers,
    )
    if args.encoder:
        from ttt.audio.codec import VQMelCodec, open_codec
        from ttt.audio.fit import retrain_vq_decoder, train_code_decoder
        from ttt.audio.pretrained import PretrainedCodec

        encoder = open_codec(args.encoder)
        if isinstance(encoder, VQMelCodec):
            codec = retrain_vq_decoder(encoder, args.data, args.out, config, warm_start=args.warm_start)
        elif isinstance(encoder, PretrainedCodec):
            if args.warm_start:
                raise ValueError("--warm-start needs a built-in codec folder as --encoder (a released encoder has no decoder of ours)")
            codec = train_code_decoder(encoder, args.data, args.out, config)
        else:
            raise ValueError(f"--encoder {args.encoder}: a {encoder.codec_type} codec cannot have its decoder retrained")
    elif args.warm_start:
        raise ValueError("--warm-start needs --encoder (the codec whose decoder to start from)")
    else:
        codec = train_codec(args.data, args.out, config)
    print(f"saved {args.out}: {codec.codebook_size} codes at {codec.frame_rate:g} codes/s")
    return 0


def _encode(args: argparse.Namespace) -> int:
    print(" ".join(map(str, _codec(args.codec).encode_file(args.file))))
    return 0


def _decode(args: argparse.Namespace) -> int:
    from ttt.audio.io import save_audio

    wave, sample_rate = _codec(args.codec).decode(parse_codes(args.codes))
    save_audio(args.output, wave, sample_rate)
    print(f"wrote {args.output} ({len(wave) / sample_rate:.2f} s)")
    return 0


def _roundtrip(args: argparse.Namespace) -> int:
    from ttt.audio.io import load_audio, save_audio

    codec = _codec(args.codec)
    wave, sample_rate = load_audio(args.file)
    codes = codec.encode(wave, sample_rate)
    out, out_rate = codec.decode(codes)
    save_audio(args.output, out, out_rate)
    print(f"wrote {args.output}: {len(codes)} codes for {len(wave) / sample_rate:.2f} s ({len(codes) / (len(wave) / sample_rate):.1f} codes/s)")
    return 0
