"""The `ttt` command line: `main` dispatches to one module per command group (data, codec, train, speech,
eval, model); `common` holds the one error handler and logging setup they share."""
from ttt.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
