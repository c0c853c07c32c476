import sys

from mocodec.cli import main

sys.exit(main())
