"""Independent evaluation: ASR scorers (`scorer`: Whisper tiny.en, PocketSphinx), text and audio
metrics (`metrics`: WER/CER, MCD-DTW, bootstrap CIs) and DNSMOS quality (`quality`). Submodules are
imported explicitly so that importing the package stays cheap."""
