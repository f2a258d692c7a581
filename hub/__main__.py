"""``python -m hub`` (the ``hub`` console script)."""

import sys

from hub.cli import main

if __name__ == "__main__":
    sys.exit(main())
