"""`python -m callrec` is the `callrec` command."""

import sys

from callrec.cli import main

sys.exit(main())
