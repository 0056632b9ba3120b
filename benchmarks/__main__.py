"""``python -m benchmarks [--quick] [--only SUITES] [--out DIR]``."""

import sys

from benchmarks import main

sys.exit(main())
