"""`ttt serve`: one loaded SpeechLM behind an HTTP + websocket API and a web page (the apps layer).

`ttt.serve.app.create_app(speech_lm)` builds the FastAPI app (tests use it in-process); `ttt serve`
(`ttt.cli.serve`) runs it under uvicorn. Nothing is imported here, so `ttt --help` stays instant and works
without the `serve` extra installed."""
