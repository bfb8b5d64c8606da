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

The stereocentre C2
-------------------
beta and delta cannot see the configuration of C2: the (2R,P) motor and the (2S,P) motor
(a different diastereomer, not a mirror image) can both be "syn-P". The configuration is
read from the geometry (:func:`c2_configuration`) with the CIP priorities of C2's four
substituents, derived for this core:

1. **C1**, the alkene carbon: substituent set (C, C, C) -- C9b, C1' and the duplicate of
   C1' for the C=C double bond;
2. **C3**, the CH2: (C, H, H) -- C3a and two hydrogens;
3. the **methyl** carbon: (H, H, H);
4. **H**.

C1 > C3 at the first point of difference (C > H in the second position), C3 > CH3 likewise.
The order holds whenever C3 carries at least one hydrogen and no neighbour heavier than
carbon (checked; otherwise ValueError). With the H pointing away from the viewer,
C1 -> C3 -> CH3 clockwise is R; in vectors: R if the signed volume
``det[C1 - C2, C3 - C2, CH3 - C2] < 0``, S if > 0 (:func:`c2_signed_volume`).
For the shipped geometry this gives (2R), as RDKit's ``Chem.AssignStereochemistryFrom3D``
and the new CIP labeller do (tested).

A mirror image inverts both C2 and the helix, so the **relative configuration**
(:func:`relative_configuration`) is invariant under reflection:

``"RP/SM"``
    (2R,P) or its mirror image (2S,M): :func:`pymotor.data.cpnx` (the default
    diastereomer) and all pymotor reference data made from it;
``"RM/SP"``
    (2R,M) or its mirror image (2S,P): the other diastereomer,
    ``pymotor.data.cpnx(diastereomer="RM/SP")``.

The names state the combination and make no claim about which form is stable.
The full label of a frame (:func:`classify_full`) adds the configuration to the conformer
label, e.g. ``"syn-P (2R,P)"``; a molecule and its mirror image get different full labels
(``"syn-P (2R,P)"`` and ``"anti-M (2S,M)"``) but the same **enantiomer-pair label**
(:func:`pair_label`), which names both mirror images, (2R) first::

    syn-P(2R)=anti-M(2S)     anti-P(2R)=syn-M(2S)     (relative configuration RP/SM)
    syn-M(2R)=anti-P(2S)     anti-M(2R)=syn-P(2S)     (relative configuration RM/SP)

These four are the physically different states of a reflection-invariant model (the four
conformers of a single enantiomer). For (2R), syn (delta < 0) puts the methyl group on the
pseudo-axial side (shipped CPNX: the C2-CH3 bond makes 78 deg with the mean plane of the
five-membered ring) and anti on the pseudo-equatorial side (33 deg after a ring flip at
fixed C2); for (2S) the other way round (``cpnx(diastereomer="RM/SP")``, (2S,P) syn: 39 deg
in its flattened ring). :func:`motor_labels` computes everything for a whole trajectory
at once (vectorised; 40,000 frames take well under a second).

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
    "RELATIVE_LABELS",
    "PAIR_LABELS",
    "c2_signed_volume",
    "c2_configuration",
    "relative_configuration",
    "classify_full",
    "classify_full_many",
    "pair_label",
    "MotorLabels",
    "motor_labels",
    "invert_c2",
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

#: relative configuration of C2 and the helix (invariant under a mirror image)
RELATIVE_LABELS = ("RP/SM", "RM/SP")

#: enantiomer-pair labels: the conformer label of the (2R) member, then of its mirror image
#: (2S); the first two have relative configuration RP/SM, the last two RM/SP
PAIR_LABELS = ("syn-P(2R)=anti-M(2S)", "anti-P(2R)=syn-M(2S)",
               "syn-M(2R)=anti-P(2S)", "anti-M(2R)=syn-P(2S)")

_MIRROR = {"anti-M": "syn-P", "syn-M": "anti-P", "anti-P": "syn-M", "syn-P": "anti-M"}


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


# -- the stereocentre C2 -------------------------------------------------------------------------


def _bonded(numbers, positions, i: int, mult: float = 1.2) -> list[int]:
    """Atoms bonded to atom i (covalent radii * mult) in one geometry."""
    from ase.data import covalent_radii

    z = np.asarray(numbers)
    d = np.linalg.norm(positions - positions[i], axis=-1)
    cut = mult * (covalent_radii[z] + covalent_radii[z[i]])
    return [int(k) for k in np.flatnonzero((d < cut) & (np.arange(len(z)) != i))]


def _check_cip_order(numbers, positions, motor: MotorAtoms) -> None:
    """Raise ValueError unless C1 > C3 > CH3 > H holds (C3 with an H and nothing heavier than C)."""
    z = np.asarray(numbers)
    others = [k for k in _bonded(z, positions, motor.c3) if k != motor.c2]
    if not any(z[k] == 1 for k in others) or any(z[k] > 6 for k in others):
        raise ValueError(
            "C2's CIP order C1 > C3 > CH3 > H was derived for a C3 that carries a hydrogen and "
            f"no atom heavier than carbon; here C3 (atom {motor.c3}) is bonded to elements "
            f"{sorted(int(z[k]) for k in others)}")


def _volumes(pos: np.ndarray, motor: MotorAtoms) -> np.ndarray:
    """det[C1 - C2, C3 - C2, CH3 - C2] of (T, N, 3) positions -> (T,), Angstrom^3."""
    c2 = pos[:, motor.c2]
    m = np.stack([pos[:, motor.c1] - c2, pos[:, motor.c3] - c2, pos[:, motor.methyl] - c2], axis=1)
    return np.linalg.det(m)


def c2_signed_volume(frames, motor: MotorAtoms | None = None):
    """Signed volume ``det[C1 - C2, C3 - C2, CH3 - C2]`` (Angstrom^3) of one geometry or trajectory.

    Negative: (2R); positive: (2S) (CIP order C1 > C3 > CH3 > H, see the module docstring).
    Returns a float for a single ``ase.Atoms``, otherwise a (T,) array. Vectorised.
    """
    from ase import Atoms

    pos, ref = _positions_of(frames)
    if motor is None:
        motor = find_motor_atoms(ref)
    vol = _volumes(pos, motor)
    return float(vol[0]) if isinstance(frames, Atoms) else vol


def c2_configuration(frames, motor: MotorAtoms | None = None):
    """CIP configuration ``"R"`` or ``"S"`` of the methyl-bearing C2, from the 3D coordinates.

    Parameters as :func:`motor_dihedrals`. Returns a str for a single ``ase.Atoms``
    (ValueError if C2 is planar), otherwise a (T,) array of ``"R"``/``"S"`` (``""`` where
    the signed volume is exactly 0 or not finite). Raises ValueError if the CIP order
    C1 > C3 > CH3 > H does not hold for this molecule (checked on the first frame).
    """
    from ase import Atoms

    pos, ref = _positions_of(frames)
    if motor is None:
        motor = find_motor_atoms(ref)
    _check_cip_order(ref.get_atomic_numbers(), pos[0], motor)
    vol = _volumes(pos, motor)
    out = np.where(vol < 0, "R", np.where(vol > 0, "S", "")).astype("<U1")
    if isinstance(frames, Atoms):
        if not out[0]:
            raise ValueError("C2 is planar (signed volume 0): configuration undefined")
        return str(out[0])
    return out


def _codes(beta, delta, config):
    """Integer codes and an `undefined` mask for the label tables below (broadcast arrays)."""
    b = np.asarray(beta, dtype=float)
    d = np.asarray(delta, dtype=float) if delta is not None else np.ones_like(b)
    c = np.asarray(config)
    if c.dtype.kind not in "US":
        raise TypeError(f"`config` must be 'R'/'S' strings, got dtype {c.dtype}")
    b, d, c = np.broadcast_arrays(b, d, c)
    is_s = c == "S"
    undefined = ((b == 0) | (d == 0) | ~np.isfinite(b) | ~np.isfinite(d)
                 | ~((c == "R") | is_s))
    # code: 4 * (S) + 2 * (P) + (anti)
    code = 4 * is_s.astype(int) + 2 * (b > 0).astype(int) + (d > 0).astype(int)
    return code, undefined


def _table(kind: str) -> np.ndarray:
    rows = []
    for cfg in "RS":
        for helix in "MP":
            for side in ("syn", "anti"):
                lab = f"{side}-{helix}"
                if kind == "full":
                    rows.append(f"{lab} (2{cfg},{helix})")
                elif kind == "relative":
                    rows.append("RP/SM" if (cfg == "R") == (helix == "P") else "RM/SP")
                else:  # pair
                    rows.append(f"{lab}(2R)={_MIRROR[lab]}(2S)" if cfg == "R"
                                else f"{_MIRROR[lab]}(2R)={lab}(2S)")
    return np.array(rows)


def _lookup(kind: str, beta, delta, config, scalar_error: str):
    code, undefined = _codes(beta, delta, config)
    out = np.where(undefined, "", _table(kind)[code])
    if out.ndim == 0:
        if undefined:
            raise ValueError(scalar_error.format(beta=beta, delta=delta, config=config))
        return str(out)
    return out


def relative_configuration(beta, config):
    """``"RP/SM"`` or ``"RM/SP"``: the configuration of C2 relative to the helix.

    ``beta`` in degrees (P if > 0, M if < 0), ``config`` ``"R"``/``"S"`` (as from
    :func:`c2_configuration`). Scalars give a str (ValueError if undefined); arrays give an
    array (``""`` where beta is 0 or not finite, or config is not R/S). Invariant under a
    mirror image, which changes the sign of beta and inverts C2.
    """
    return _lookup("relative", beta, None, config,
                   "relative configuration undefined for beta={beta!r}, config={config!r}")


def classify_full(beta: float, delta: float, config: str) -> str:
    """Conformer label plus configuration of one frame, e.g. ``"syn-P (2R,P)"``.

    ``beta``/``delta`` in degrees, ``config`` ``"R"`` or ``"S"``. ValueError where the
    label is undefined (beta or delta exactly 0 or not finite, config not R/S).
    Not invariant under a mirror image (see :func:`pair_label`).
    """
    if np.ndim(beta) or np.ndim(delta) or np.ndim(config):
        raise TypeError("classify_full takes one frame; use classify_full_many for arrays")
    return _lookup("full", beta, delta, config,
                   "label undefined for beta={beta!r}, delta={delta!r}, config={config!r}")


def classify_full_many(beta, delta, config) -> np.ndarray:
    """Vectorised :func:`classify_full`: array of labels (``""`` where undefined)."""
    return np.atleast_1d(_lookup("full", np.atleast_1d(beta), delta, config, ""))


def pair_label(beta, delta, config):
    """Enantiomer-pair label, the same for a frame and its mirror image, e.g.
    ``"syn-P(2R)=anti-M(2S)"`` for the shipped CPNX and for its mirror image.

    One of :data:`PAIR_LABELS`: the conformer label the (2R) member of the pair has, then
    that of the (2S) member. Scalars give a str (ValueError if undefined); arrays an array
    (``""`` where undefined).
    """
    return _lookup("pair", beta, delta, config,
                   "label undefined for beta={beta!r}, delta={delta!r}, config={config!r}")


@dataclass(frozen=True)
class MotorLabels:
    """Per-frame labels of a trajectory (all (T,) arrays), from :func:`motor_labels`."""

    beta: np.ndarray
    delta: np.ndarray
    signed_volume: np.ndarray
    config: np.ndarray
    conformer: np.ndarray
    relative: np.ndarray
    full: np.ndarray
    pair: np.ndarray

    def __len__(self) -> int:
        return len(self.beta)

    def populations(self, kind: str = "pair") -> dict[str, float]:
        """Fraction of frames per label; ``kind`` is one of ``"conformer"``, ``"relative"``,
        ``"pair"``, ``"config"`` (all labels of the kind are listed, zeros included;
        undefined frames under ``""`` if any)."""
        names = {"conformer": LABELS, "relative": RELATIVE_LABELS, "pair": PAIR_LABELS,
                 "config": ("R", "S")}
        if kind not in names:
            raise ValueError(f"`kind` must be one of {sorted(names)}, got {kind!r}")
        lab = getattr(self, kind)
        n = max(len(lab), 1)
        out = {name: float(np.count_nonzero(lab == name)) / n for name in names[kind]}
        undefined = int(np.count_nonzero(lab == ""))
        if undefined:
            out[""] = undefined / n
        return out


def motor_labels(frames, motor: MotorAtoms | None = None) -> MotorLabels:
    """beta, delta, C2 configuration and every label of one geometry or a trajectory.

    Vectorised over frames (arrays of length T; T = 1 for a single ``ase.Atoms``).
    Frames input as :func:`motor_dihedrals`.
    """
    pos, ref = _positions_of(frames)
    if motor is None:
        motor = find_motor_atoms(ref)
    _check_cip_order(ref.get_atomic_numbers(), pos[0], motor)
    beta = np.atleast_1d(dihedral(pos, motor.beta))
    delta = np.atleast_1d(dihedral(pos, motor.delta))
    vol = _volumes(pos, motor)
    config = np.where(vol < 0, "R", np.where(vol > 0, "S", "")).astype("<U1")
    return MotorLabels(
        beta=beta, delta=delta, signed_volume=vol, config=config,
        conformer=classify_many(beta, delta),
        relative=np.atleast_1d(relative_configuration(beta, config)),
        full=classify_full_many(beta, delta, config),
        pair=np.atleast_1d(pair_label(beta, delta, config)),
    )


def invert_c2(atoms, motor: MotorAtoms | None = None, how: str = "substituents"):
    """Copy of ``atoms`` with the configuration of C2 inverted by a reflection of a few atoms.

    ``how="substituents"``
        the methyl group (C and its three H) and the H on C2 are reflected through the
        plane of C1, C2 and C3; nothing else moves, so beta and delta keep their values and
        the methyl group goes from pseudo-axial to pseudo-equatorial or back.
    ``how="flap"``
        C2, its H and the methyl group are reflected through the plane of C1, C3 and C3a:
        the ring pucker flips as well (delta changes sign, beta is kept), and the methyl
        group keeps its pseudo-axial/equatorial character.

    Either way the result has the other relative configuration (:func:`relative_configuration`).
    Bond lengths to C2 are kept; the geometry needs a relaxation afterwards (as
    ``scripts/make_cpnx.py --other-diastereomer`` does).
    """
    if how not in ("substituents", "flap"):
        raise ValueError(f"`how` must be 'substituents' or 'flap', got {how!r}")
    if motor is None:
        motor = find_motor_atoms(atoms)
    a = atoms.copy()
    z = a.get_atomic_numbers()
    pos = a.get_positions()
    h2 = [k for k in _bonded(z, pos, motor.c2) if z[k] == 1]
    hme = [k for k in _bonded(z, pos, motor.methyl) if z[k] == 1]
    if len(h2) != 1 or len(hme) != 3:
        raise ValueError(f"`atoms`: expected one H on C2 and three on the methyl group, "
                         f"found {len(h2)} and {len(hme)}")
    if how == "substituents":
        plane = (motor.c1, motor.c2, motor.c3)
        moved = [motor.methyl, *hme, *h2]
    else:
        plane = (motor.c1, motor.c3, motor.c3a)
        moved = [motor.c2, motor.methyl, *hme, *h2]
    p0, p1, p2 = pos[list(plane)]
    n = np.cross(p1 - p0, p2 - p0)
    n /= np.linalg.norm(n)
    pos[moved] -= 2.0 * ((pos[moved] - p0) @ n)[:, None] * n
    a.set_positions(pos)
    return a


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
