"""Energy along one C–H bond of CPNX: GFN2-xTB (tblite) against NN models.

    python scripts/scan_ch_bond.py MODEL.pt [MODEL.pt ...]

Moves one hydrogen of the GFN2-xTB minimum along its C–H bond (0.5–1.4 Å; every other atom
fixed) and prints each method's energy relative to the equilibrium bond length, in eV. Shows
whether a model has the repulsive wall at short distances that its 300 K training data never
sampled.
"""

from __future__ import annotations

import sys

import numpy as np


def scan(model_paths, distances_A=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0, None, 1.2, 1.4), hydrogen=5):
    import pymotor
    from pymotor.data import make_calculator

    a0 = pymotor.data.cpnx()
    z = a0.numbers
    h = [i for i in range(len(z)) if z[i] == 1][hydrogen]
    d = a0.get_distances(h, range(len(z)))
    d[h] = np.inf
    c = int(np.argmin(d))
    r0 = float(d[c])
    u = (a0.positions[h] - a0.positions[c]) / r0
    rs = np.array([r0 if r is None else r for r in distances_A])
    calc = make_calculator("tblite", atoms=a0)
    models = {p: pymotor.load_model(p) for p in model_paths}
    rows = {"GFN2-xTB": [], **{p: [] for p in model_paths}}
    for r in rs:
        a = a0.copy()
        a.positions[h] = a0.positions[c] + r * u
        a.calc = calc
        rows["GFN2-xTB"].append(a.get_potential_energy())
        for p, m in models.items():
            rows[p].append(m.compute(a)[0])
    i0 = int(np.argmin(np.abs(rs - r0)))
    return rs, {k: np.array(v) - v[i0] for k, v in rows.items()}


def main(argv=None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv)
    rs, rows = scan(paths)
    print("| r(C–H) / Å | " + " | ".join(f"{r:.2f}" for r in rs) + " |")
    print("|---" * (len(rs) + 1) + "|")
    for k, v in rows.items():
        print(f"| {k} | " + " | ".join(f"{x:.2f}" for x in v) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
