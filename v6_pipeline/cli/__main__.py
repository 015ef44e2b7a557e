"""`python -m v6_pipeline.cli ...`: the `v6` command without its console script."""

import sys

from v6_pipeline.cli import main

sys.exit(main())
