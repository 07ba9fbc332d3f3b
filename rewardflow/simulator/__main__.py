"""``python -m rewardflow.simulator``: the old way to start the server, kept with the same options.

It predates ``rewardflow simulate``; launch commands in users' configs still use it.
"""

import sys

from rewardflow.cli.main import main

sys.exit(main(["simulate", *sys.argv[1:]]))
