"""Rate-distortion evaluation: ``python eval_rd.py --codec jpeg --qualities 10,50,90 --dataset DIR --out r.json``."""

import sys

from mocodec.commands import main

sys.exit(main(["eval-rd", *sys.argv[1:]]))
