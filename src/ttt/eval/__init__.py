"""Evaluation: the harness that runs a model over eval JSONL and scores it (`harness`), ASR scorers (`scorer`: Whisper tiny.en, PocketSphinx), text and audio
metrics (`metrics`: WER/CER, MCD-DTW, bootstrap CIs) and DNSMOS quality (`quality`). Submodules are
imported explicitly so that importing the package stays cheap."""
