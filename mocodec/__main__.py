"""``python -m mocodec``: the ``mocodec`` command line."""

import sys

from mocodec.commands import main

sys.exit(main())
