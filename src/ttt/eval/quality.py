"""DNSMOS (Microsoft's non-intrusive MOS predictor), the quality proxy for the paper's UTMOS/NMOS row.

The ONNX models ship inside the `speechmos` wheel; we build the sessions ourselves (speechmos would
let onnxruntime take every core) and reuse its scoring code. Scores are on the 1–5 MOS scale:
``sig`` speech quality, ``bak`` background noise, ``ovrl`` overall, ``p808`` the ITU-T P.808 model.
Clips shorter than the model's 9 s window are tiled to fill it, as speechmos does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ttt.eval.metrics import check_wave

_DNSMOS = None


def _model():
    global _DNSMOS
    if _DNSMOS is None:
        import onnxruntime
        import speechmos.dnsmos as dnsmos

        from ttt.audio.features import side_threads

        models = Path(dnsmos.__file__).parent / "dnsmos_models"
        scorer = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = side_threads()
        scorer.primary_model_path = str(models / "sig_bak_ovr.onnx")
        scorer.onnx_sess = onnxruntime.InferenceSession(
            scorer.primary_model_path, options, providers=["CPUExecutionProvider"])
        scorer.p808_onnx_sess = onnxruntime.InferenceSession(
            str(models / "model_v8.onnx"), options, providers=["CPUExecutionProvider"])
        _DNSMOS = scorer
    return _DNSMOS


def dnsmos(wave: np.ndarray, sample_rate: int) -> dict[str, float]:
    """{"ovrl", "sig", "bak", "p808"} MOS estimates for one clip (resampled to 16 kHz)."""
    from ttt.eval.scorer import to_16k

    wave = to_16k(check_wave(wave, sample_rate), sample_rate)
    if float(np.max(np.abs(wave))) == 0.0:
        raise ValueError("wave is all zeros; DNSMOS is undefined for digital silence")
    scores = _model()(wave, 16000, False)
    return {"ovrl": float(scores["ovrl_mos"]), "sig": float(scores["sig_mos"]),
            "bak": float(scores["bak_mos"]), "p808": float(scores["p808_mos"])}
