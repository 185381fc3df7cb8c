"""``python -m style_transfer`` = the ``style-transfer`` command."""

import sys

from .cli import main

sys.exit(main())
