"""``python -m flows`` is ``python -m flows.flyer``."""

import sys

from flows.flyer import main

sys.exit(main())
