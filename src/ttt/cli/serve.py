"""`ttt serve`: load the model and codec once and serve the page, the websocket and the HTTP API (`ttt.serve`)."""
from __future__ import annotations

import argparse
import sys

from ttt.cli.common import decoding, decoding_arguments, device_argument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help="serve a spoken conversation: web page, websocket and HTTP API",
        description="Load the model and codec once; serve the talk page at http://HOST:PORT/, the streaming "
                    "websocket /v1/talk, POST /v1/chat, GET /health and GET /v1/model (docs/serve.md).")
    p.add_argument("--model", help="TtT model directory (default: the shipped model)")
    p.add_argument("--codec", help="codec directory (default: the shipped codec)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    device_argument(p)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--max-upload-mb", type=float, default=4.0, help="largest audio upload in MiB (default: 4)")
    p.add_argument("--max-audio-seconds", type=float, default=20.0, help="longest spoken question (default: 20)")
    p.add_argument("--max-history-turns", type=int, default=0,
                   help="earlier turns of a conversation put back into the prompt (default: 0, because the "
                        "shipped model was trained on single turns and answers worse after one; raise it for "
                        "a model trained on conversations)")
    p.add_argument("--max-sessions", type=int, default=64, help="websocket clients at once (default: 64)")
    decoding_arguments(p)
    return p


def register(subparsers: argparse._SubParsersAction) -> None:
    add_parser(subparsers).set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    try:
        import uvicorn

        from ttt.serve.app import ServeLimits, create_app
    except ImportError as err:
        raise ValueError(f"ttt serve needs the serve extra ({err.name} is missing): "
                         "pip install 'text-to-talk[serve]'") from None
    from ttt.speech import SpeechLM, default_model_dir

    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_audio_seconds <= 0 or args.max_history_turns < 0 or args.max_sessions < 1:
        raise ValueError("--max-upload-mb, --max-audio-seconds and --max-sessions must be positive, "
                         "--max-history-turns >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = SpeechLM.from_dir(args.model, args.codec, device=args.device, **decoding(args))
    lm.warm_up()
    limits = ServeLimits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                         max_audio_seconds=args.max_audio_seconds, max_history_turns=args.max_history_turns,
                         max_sessions=args.max_sessions)
    app = create_app(lm, limits, info={"model_dir": str(args.model or default_model_dir())})
    print(f"ttt serve: talk at http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
    # websocket frames may be a little over the upload limit, so that the app (not the transport) answers
    # an oversized one with a clear 413 error
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                ws_max_size=limits.max_upload_bytes + 1024 * 1024)
    return 0
