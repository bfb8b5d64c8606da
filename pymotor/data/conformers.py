"""Conformer labels of second-generation (Feringa-type) molecular motors such as CPNX.

Two dihedral angles, found from the molecule's topology by RDKit substructure matching
(never from hard-coded atom indices):

``beta`` -- helicity of the fjord region
    dihedral **C9a - C9b - C1 = C1'**: the ring-fusion carbon of the upper half's
    aromatic system that lines the fjord (C9a), the aromatic carbon that carries the
    alkene (C9b), the upper alkene carbon (C1, in the five-membered ring) and the lower
    alkene carbon (C1', the xanthene C9). These four atoms lie on the helical path
    through the fjord; a positive torsion is a right-handed helix (P), a negative one
    a left-handed helix (M) (IUPAC sign convention: looking along C9b->C1, positive
    when the front bond must turn clockwise to eclipse the back bond).
    Shipped CPNX (GFN2-xTB minimum, :func:`pymotor.data.cpnx`): beta = +35.7 deg.

``delta`` -- orientation of the cyclopentane ring (and so of its methyl group)
    dihedral **C9b - C1 - C2 - C3** inside the five-membered ring: C2 is the
    stereocentre that carries the methyl group, C3 the CH2. Its sign says to which
    side of the ring plane the C2 flap (and with it the methyl group) is puckered: for a
    given configuration of C2 one sign puts the methyl pseudo-axial, the other
    pseudo-equatorial. Shipped CPNX: delta = -33.0 deg, so it is "syn-P" (the (2R)
    enantiomer with the methyl pseudo-axial; its mirror image is "anti-M").

Classification (:func:`classify`): M if beta < 0, P if beta > 0; syn if delta < 0,
anti if delta > 0 -> ``"anti-M" | "syn-M" | "anti-P" | "syn-P"``.
All dihedrals change sign under a mirror image, so the mirror image of anti-M is syn-P
(and of syn-M anti-P).

The atom names above use the upper-half numbering of
2-methyl-2,3-dihydro-1H-cyclopenta[a]naphthalen-1-ylidene; ``scripts/make_dihedral_figure.py``
draws ``docs/figures/cpnx_dihedrals.png`` with the four atoms of each angle highlighted.
The SMARTS needs only connectivity (bonds of any order), so it also matches a molecule
whose bonds were perceived from coordinates (``rdDetermineBonds.DetermineConnectivity``),
and any motor with the same core (methyl-substituted five-membered ring fused to an
aromatic upper half, exocyclic C=C to a lower half).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "MOTOR_CORE_SMARTS",
    "MotorAtoms",
    "find_motor_atoms",
    "dihedral",
    "motor_dihedrals",
    "classify",
    "classify_many",
    "LABELS",
    "plot_dihedrals",
]

#: connectivity-only SMARTS of the motor core; atom-map numbers name the atoms:
#: 1 methyl C, 2 C2 (stereocentre), 3 C3 (CH2), 4 C3a, 9 C9b, 10 C9a (fjord),
#: 5 C1 (upper alkene carbon), 6 C1' (lower alkene carbon), 7/8 the lower half's
#: two carbons bonded to C1'.
MOTOR_CORE_SMARTS = (
    "[#6X4:1](~[#1])(~[#1])(~[#1])~[#6X4;R:2]1~[#6X4;R:3]~[#6X3;R:4]~[#6X3;R:9]"
    "(~[#6X3;R:10])~[#6X3;R:5]~1!@[#6X3:6](~[#6X3;R:7])~[#6X3;R:8]"
)

LABELS = ("anti-M", "syn-M", "anti-P", "syn-P")


@dataclass(frozen=True)
class MotorAtoms:
    """0-based atom indices of the motor's named atoms."""

    methyl: int
    c2: int
    c3: int
    c3a: int
    c9b: int
    c9a: int
    c1: int
    c1p: int
    lower: tuple[int, int]

    @property
    def beta(self) -> tuple[int, int, int, int]:
        """C9a, C9b, C1, C1' (helicity of the fjord region)."""
        return (self.c9a, self.c9b, self.c1, self.c1p)

    @property
    def delta(self) -> tuple[int, int, int, int]:
        """C9b, C1, C2, C3 (pucker of the cyclopentane ring carrying the methyl)."""
        return (self.c9b, self.c1, self.c2, self.c3)


def _pattern():
    from rdkit import Chem

    patt = Chem.MolFromSmarts(MOTOR_CORE_SMARTS)
    if patt is None:  # pragma: no cover - constant pattern
        raise RuntimeError("invalid motor SMARTS")
    return patt


def _mol_from_atoms(atoms, charge: int = 0):
    """RDKit molecule with connectivity perceived from the coordinates."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    numbers = np.asarray(atoms.get_atomic_numbers())
    positions = np.asarray(atoms.get_positions(), dtype=float)
    lines = [str(len(numbers)), ""]
    from ase.data import chemical_symbols

    for z, (x, y, zc) in zip(numbers, positions):
        lines.append(f"{chemical_symbols[int(z)]} {x:.8f} {y:.8f} {zc:.8f}")
    mol = Chem.MolFromXYZBlock("\n".join(lines) + "\n")
    if mol is None:
        raise ValueError("`atoms`: RDKit could not read the coordinates")
    rdDetermineBonds.DetermineConnectivity(mol, charge=charge)
    return mol


def find_motor_atoms(atoms, mol=None) -> MotorAtoms:
    """Locate the motor core in ``atoms`` (ase.Atoms) by substructure matching.

    Parameters
    ----------
    atoms : ase.Atoms
        One geometry of the molecule (Angstrom); bonds are perceived from it unless
        ``mol`` is given.
    mol : rdkit.Chem.Mol, optional
        A molecule with explicit hydrogens whose atom order equals ``atoms``
        (e.g. from SMILES + ``Chem.AddHs``); bond orders are not needed.

    Raises
    ------
    ValueError
        if the motor core is not found or is found more than once.
    """
    if mol is None:
        mol = _mol_from_atoms(atoms)
    elif mol.GetNumAtoms() != len(atoms):
        raise ValueError(f"`mol` has {mol.GetNumAtoms()} atoms but `atoms` has {len(atoms)}")
    from rdkit import Chem

    mol.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(mol)
    patt = _pattern()
    matches = mol.GetSubstructMatches(patt, uniquify=False, maxMatches=10000)
    mapnum = [a.GetAtomMapNum() for a in patt.GetAtoms()]
    found = {}
    for match in matches:
        named = {m: idx for m, idx in zip(mapnum, match) if m}
        key = (named[1], named[2], named[3], named[4], named[9], named[10], named[5], named[6])
        found.setdefault(key, tuple(sorted((named[7], named[8]))))
    if not found:
        raise ValueError(
            "`atoms`: no second-generation motor core found (methyl-substituted "
            "five-membered ring with an exocyclic C=C between two aromatic halves)"
        )
    if len(found) > 1:
        raise ValueError(f"`atoms`: the motor core matches {len(found)} ways; ambiguous molecule")
    (key, lower), = found.items()
    me, c2, c3, c3a, c9b, c9a, c1, c1p = key
    return MotorAtoms(methyl=me, c2=c2, c3=c3, c3a=c3a, c9b=c9b, c9a=c9a, c1=c1, c1p=c1p,
                      lower=lower)


def dihedral(positions, idx: Sequence[int]) -> np.ndarray:
    """Dihedral angle(s) in degrees in (-180, 180] (IUPAC sign, as RDKit's GetDihedralDeg).

    ``positions`` is (N, 3) or (T, N, 3); returns a float or a (T,) array.
    """
    pos = np.asarray(positions, dtype=float)
    single = pos.ndim == 2
    if single:
        pos = pos[None]
    if pos.ndim != 3 or pos.shape[-1] != 3:
        raise ValueError(f"`positions` must be (N, 3) or (T, N, 3), got {np.shape(positions)}")
    i, j, k, l = idx
    b0 = pos[:, i] - pos[:, j]
    b1 = pos[:, k] - pos[:, j]
    b2 = pos[:, l] - pos[:, k]
    b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1n, axis=-1, keepdims=True) * b1n
    w = b2 - np.sum(b2 * b1n, axis=-1, keepdims=True) * b1n
    x = np.sum(v * w, axis=-1)
    y = np.sum(np.cross(b1n, v) * w, axis=-1)
    angle = np.degrees(np.arctan2(y, x))
    return float(angle[0]) if single else angle


def _positions_of(frames):
    """(T, N, 3) positions and a reference ase.Atoms from several input kinds."""
    from ase import Atoms

    if isinstance(frames, Atoms):
        return frames.get_positions()[None], frames
    if hasattr(frames, "positions") and hasattr(frames, "atomic_numbers"):  # pymotor Trajectory
        pos = np.asarray(frames.positions, dtype=float)
        ref = Atoms(numbers=np.asarray(frames.atomic_numbers), positions=pos[0])
        return pos, ref
    frames = list(frames)
    if not frames:
        raise ValueError("`frames` is empty")
    if not all(isinstance(f, Atoms) for f in frames):
        raise TypeError("`frames` must be an ase.Atoms, a list of ase.Atoms or a pymotor Trajectory")
    return np.stack([f.get_positions() for f in frames]), frames[0]


def motor_dihedrals(frames, motor: MotorAtoms | None = None):
    """beta and delta (degrees) of one geometry or a trajectory.

    Parameters
    ----------
    frames : ase.Atoms | list[ase.Atoms] | pymotor Trajectory
        Geometries of one molecule (same atom order in every frame).
    motor : MotorAtoms, optional
        Indices from :func:`find_motor_atoms`; found from the first frame if omitted.

    Returns
    -------
    (beta, delta)
        floats for a single ``ase.Atoms``, otherwise two (T,) arrays.
    """
    from ase import Atoms

    pos, ref = _positions_of(frames)
    if motor is None:
        motor = find_motor_atoms(ref)
    beta = dihedral(pos, motor.beta)
    delta = dihedral(pos, motor.delta)
    if isinstance(frames, Atoms):
        return float(beta[0]), float(delta[0])
    return beta, delta


def classify(beta: float, delta: float) -> str:
    """``"anti-M" | "syn-M" | "anti-P" | "syn-P"`` from beta and delta (degrees).

    M: beta < 0, P: beta > 0; syn: delta < 0, anti: delta > 0. A value of exactly 0
    (no helicity / a planar ring) raises ValueError.
    """
    beta = float(beta)
    delta = float(delta)
    if not (np.isfinite(beta) and np.isfinite(delta)):
        raise ValueError(f"`beta`/`delta` must be finite, got {beta}, {delta}")
    if beta == 0.0:
        raise ValueError("`beta` is exactly 0: helicity undefined")
    if delta == 0.0:
        raise ValueError("`delta` is exactly 0: ring orientation undefined")
    helix = "M" if beta < 0 else "P"
    side = "syn" if delta < 0 else "anti"
    return f"{side}-{helix}"


def classify_many(beta: Iterable[float], delta: Iterable[float]) -> np.ndarray:
    """Vectorised :func:`classify`: array of labels (``""`` where undefined)."""
    b = np.asarray(beta, dtype=float)
    d = np.asarray(delta, dtype=float)
    out = np.where(b < 0, np.where(d < 0, "syn-M", "anti-M"), np.where(d < 0, "syn-P", "anti-P"))
    undefined = (b == 0) | (d == 0) | ~np.isfinite(b) | ~np.isfinite(d)
    return np.where(undefined, "", out).astype("<U6")


def plot_dihedrals(beta, delta, ax=None, labels: Sequence[str] | None = None, out=None,
                   title: str | None = None, **scatter_kw):
    """Scatter plot of beta against delta (degrees) with the four conformer quadrants.

    ``beta``/``delta`` are arrays, or lists of arrays (one per dataset, named by
    ``labels``). Returns the matplotlib Axes; saves to ``out`` if given.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 4.5))
    else:
        fig = ax.figure
    b_list = beta if isinstance(beta, (list, tuple)) and np.ndim(beta[0]) > 0 else [beta]
    d_list = delta if isinstance(delta, (list, tuple)) and np.ndim(delta[0]) > 0 else [delta]
    if len(b_list) != len(d_list):
        raise ValueError("`beta` and `delta` must hold the same number of datasets")
    if labels is None:
        labels = [None] * len(b_list)
    kw = dict(s=4, alpha=0.5)
    kw.update(scatter_kw)
    for b, d, lab in zip(b_list, d_list, labels):
        ax.scatter(np.asarray(b), np.asarray(d), label=lab, **kw)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.axvline(0, color="0.5", lw=0.8)
    lim_b = max(60.0, float(np.nanmax(np.abs(np.concatenate([np.ravel(x) for x in b_list])))) * 1.1)
    lim_d = max(60.0, float(np.nanmax(np.abs(np.concatenate([np.ravel(x) for x in d_list])))) * 1.1)
    ax.set_xlim(-lim_b, lim_b)
    ax.set_ylim(-lim_d, lim_d)
    for x, y, text in ((-1, 1, "anti-M"), (-1, -1, "syn-M"), (1, 1, "anti-P"), (1, -1, "syn-P")):
        ax.text(0.5 + 0.45 * x, 0.5 + 0.45 * y, text, transform=ax.transAxes,
                ha="left" if x < 0 else "right", va="top" if y > 0 else "bottom", color="0.3")
    ax.set_xlabel(r"$\beta$ (C9a-C9b-C1=C1') / deg")
    ax.set_ylabel(r"$\delta$ (C9b-C1-C2-C3) / deg")
    if title:
        ax.set_title(title)
    if any(lab is not None for lab in labels):
        ax.legend(loc="center right", markerscale=3, fontsize="small")
    if out is not None:
        fig.tight_layout()
        fig.savefig(out, dpi=150)
    return ax
