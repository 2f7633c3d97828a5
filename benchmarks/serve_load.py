"""`ttt serve` under load on loopback: answers/s, time to first audio, peak server memory.

    python -m benchmarks.serve_load                       # 1 and 8 clients, 2 spoken turns each
    python -m benchmarks.serve_load --clients 1 4 16 --turns 3 --threads 2 --json serve_load.json
    python -m benchmarks.serve_load --clients 1 8 --device cuda   # the Transformer on a GPU

Starts the real command (`python -m ttt.cli serve`, the shipped model unless --model) on a free port,
then for each client count opens that many websocket connections at once; each speaks the shipped
question ("what is six plus three") `--turns` times, waiting for each answer. Per turn it records the
time from sending the audio to the first audio chunk received and to the done event. The server's
resident memory (RSS) is sampled every 50 ms. Turns share one model behind a lock, so time to first
audio grows with the queue: the figures say how many clients one CPU process can keep talking.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
QUESTION = ROOT / "src" / "ttt" / "assets" / "demo" / "question.wav"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, args: argparse.Namespace) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-m", "ttt.cli", "serve", "--port", str(port), "--threads", str(args.threads)]
    if args.model:
        cmd += ["--model", args.model]
    cmd += ["--device", args.device]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ttt serve exited with status {proc.returncode}; run it by hand to see why")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("ttt serve did not answer /health within 120 s")


class PeakRSS:
    """Samples a process's resident memory in a thread; `peak` in bytes."""

    def __init__(self, pid: int) -> None:
        self.process, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.05)

    def reset(self) -> None:
        self.peak = self.process.memory_info().rss


async def client(url: str, question: bytes, turns: int) -> list[dict]:
    """One conversation: `turns` spoken questions, each timed to first audio chunk and to done."""
    records = []
    async with connect(url, max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        for _ in range(turns):
            sent, first = time.perf_counter(), None
            await ws.send(question)
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "audio" and first is None:
                    first = time.perf_counter() - sent
                if event["type"] in ("done", "error"):
                    break
            records.append({"ok": event["type"] == "done" and "nine" in event.get("text", ""),
                            "first_audio_s": first, "answer_s": time.perf_counter() - sent})
    return records


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def run_round(port: int, clients: int, turns: int, rss: PeakRSS) -> dict:
    question = QUESTION.read_bytes()
    url = f"ws://127.0.0.1:{port}/v1/talk"
    rss.reset()
    start = time.perf_counter()

    async def everyone():
        return await asyncio.gather(*[client(url, question, turns) for _ in range(clients)])

    records = [r for conv in asyncio.run(everyone()) for r in conv]
    wall = time.perf_counter() - start
    firsts = [r["first_audio_s"] for r in records if r["first_audio_s"] is not None]
    return {
        "clients": clients, "answers": len(records), "correct": sum(r["ok"] for r in records),
        "wall_s": round(wall, 2), "answers_per_s": round(len(records) / wall, 3),
        "first_audio_p50_s": round(percentile(firsts, 0.5), 3), "first_audio_p95_s": round(percentile(firsts, 0.95), 3),
        "answer_p50_s": round(percentile([r["answer_s"] for r in records], 0.5), 3),
        "peak_rss_mb": round(rss.peak / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8], help="client counts, one round each")
    parser.add_argument("--turns", type=int, default=2, help="spoken turns per client")
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--device", default="cpu", help="the server's --device (cpu, cuda)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    port = free_port()
    server = start_server(port, args)
    try:
        rss = PeakRSS(server.pid)
        idle_mb = round(rss.process.memory_info().rss / 2**20, 1)
        rows = [run_round(port, n, args.turns, rss) for n in args.clients]
        rss.stop.set()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"server RSS after start-up: {idle_mb} MB; {args.turns} spoken turns per client; "
          f"{psutil.cpu_count()} CPUs, server on {args.device} with {args.threads} torch thread(s)")
    print("| clients | answers (correct) | answers/s | first audio p50 / p95 | answer p50 | peak RSS |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['clients']} | {r['answers']} ({r['correct']}) | {r['answers_per_s']:.2f} | "
              f"{r['first_audio_p50_s']:.2f} s / {r['first_audio_p95_s']:.2f} s | {r['answer_p50_s']:.2f} s | "
              f"{r['peak_rss_mb']:.0f} MB |")
    if args.json:
        Path(args.json).write_text(json.dumps({"idle_rss_mb": idle_mb, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
