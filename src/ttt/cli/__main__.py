"""`python -m ttt.cli ...`: the `ttt` command without its console script."""
import sys

from ttt.cli.main import main

sys.exit(main())
