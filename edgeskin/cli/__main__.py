"""`python -m edgeskin.cli ...` (what torchrun runs for DDP training) is the `edgeskin` command."""

import sys

from edgeskin.cli import main

sys.exit(main())
