"""One round of active learning: NN MD of CPNX, then GFN2-xTB labels for frames it visited.

    python scripts/active_learning.py MODEL.pt --like data/T300/T300_1.db --out data/AL1/AL1.db \
        --runs 12 --temperature 300 --time-fs 5000 --every-fs 50 --before-fs 300

The logic lives in :mod:`pymotor.learn.offline` (this script is kept for the commands in
docs/training.md that made the shipped model); the on-the-fly loop is ``pymotor learn``.
"""

from __future__ import annotations

import sys

from pymotor.learn.offline import label_round, main, sample_frames  # noqa: F401  (the script's old names)

if __name__ == "__main__":
    sys.exit(main())
