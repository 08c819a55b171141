"""``python -m mamba_state_ext.bench``."""

import sys

from .cli import main

sys.exit(main())
