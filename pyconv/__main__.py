"""``python -m pyconv``: the command line, implemented in :mod:`pyconv._cli`."""

import sys

from pyconv._cli import main

if __name__ == "__main__":
    sys.exit(main())
