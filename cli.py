"""Run scaler from a source checkout: ``python cli.py flops --baseline resnet50``.

The same as the installed ``scaler`` command and ``python -m scaler``.
"""

import sys

from scaler.cli import main

if __name__ == "__main__":
    sys.exit(main())
