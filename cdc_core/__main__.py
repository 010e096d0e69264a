"""`python -m cdc_core` → cli.main()."""

import sys

from .cli import main

sys.exit(main())
