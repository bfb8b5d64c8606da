"""How often NN MD of CPNX blows up: now ``pymotor stability`` (pymotor/stability.py).

    python scripts/md_stability.py MODEL.pt|cpnx-schnet [...] --runs 12 --timestep-fs 1.0 --time-fs 5000 \
        [--temperature 300] [--scheduler ...] [--workers N] [--out DIR]

is the same as ``pymotor stability ...``: NVT runs from the GFN2-xTB minimum with seeded
velocities (seeds 100, 101, ...), as parallel tasks (pymotor.parallel), counting the runs that
blew up and the steps at which they did. Kept so that older commands and docs still work.
"""

from __future__ import annotations

import sys

from pymotor.stability import blow_up_steps, main  # noqa: F401  (blow_up_steps: the old API)

if __name__ == "__main__":
    sys.exit(main(["stability", *sys.argv[1:]]))
