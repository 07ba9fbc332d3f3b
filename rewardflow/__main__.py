"""``python -m rewardflow``: the ``rewardflow`` command without its console script."""

import sys

from rewardflow.cli import main

sys.exit(main())
