"""Synthetic speech corpus: a closed world of facts (`world`), offline TTS voices (`voices`) and the
deterministic builder behind `ttt data synth` (`synth`). Submodules are imported explicitly so that
importing the package stays cheap."""
