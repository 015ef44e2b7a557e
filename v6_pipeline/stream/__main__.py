import sys

from v6_pipeline.stream.command import main

sys.exit(main())
