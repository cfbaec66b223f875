"""``python -m e2e.demo``: see :mod:`e2e.demo.cli`.

The imports take a moment; a Ctrl-C during them gets one line, not a traceback.
"""

import sys

try:
    from e2e.demo.cli import main
except KeyboardInterrupt:
    print("\ninterrupted before anything was started", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
