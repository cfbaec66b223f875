"""``python -m gitopsd``: the same as the ``gitopsd`` command."""

import sys

from gitopsd.cli import main

sys.exit(main())
