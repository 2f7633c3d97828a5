"""Synthetic speech corpus: a closed world of facts (`world`), offline TTS voices (`voices`) and the
deterministic builder behind `ttt data synth` (`synth`), and `build`, which encodes a corpus into chat-format training and eval JSONL (`ttt data build`). Submodules are imported explicitly so that
importing the package stays cheap."""
