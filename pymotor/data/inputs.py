"""Start geometries for reference generation: from a SMILES string or an xyz file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["atoms_from_smiles", "atoms_from_xyz", "order_o_c_h"]


def atoms_from_smiles(smiles: str, seed: int = 0, n_conformers: int = 10):
    """ase.Atoms from a SMILES string: RDKit ETKDGv3 (``randomSeed=seed``) + MMFF94.

    The lowest-MMFF94 of ``n_conformers`` embedded conformers is returned (UFF when MMFF94
    has no parameters). Atom order as RDKit's (heavy atoms as in the SMILES, then H).
    The formal charge of the SMILES is in ``atoms.info["charge"]``.

    Raises ValueError naming ``smiles`` when RDKit cannot parse or embed it.
    """
    from rdkit import Chem, RDLogger

    if not isinstance(smiles, str) or not smiles.strip():
        raise ValueError(f"`smiles` must be a non-empty string, got {smiles!r}")
    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    if mol is None:
        raise ValueError(f"`smiles`: RDKit could not parse {smiles!r}")
    RDLogger.DisableLog("rdApp.*")  # UFF/MMFF typer chatter; failures are raised below
    try:
        return _embed(Chem.AddHs(mol), smiles, seed, n_conformers)
    finally:
        RDLogger.EnableLog("rdApp.*")


def _embed(mol, smiles, seed, n_conformers):
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed)
    cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=int(n_conformers), params=params))
    if not cids:
        params.useRandomCoords = True
        cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=int(n_conformers), params=params))
    if not cids:
        raise ValueError(f"`smiles`: RDKit could not embed {smiles!r} in 3D")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        res = AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=5000)
    else:
        res = AllChem.UFFOptimizeMoleculeConfs(mol, maxIters=5000)
    energies = [e for _, e in res]
    best = cids[int(np.argmin(energies))]
    z = [a.GetAtomicNum() for a in mol.GetAtoms()]
    atoms = Atoms(numbers=z, positions=mol.GetConformer(best).GetPositions())
    atoms.info["smiles"] = smiles
    atoms.info["charge"] = int(Chem.GetFormalCharge(mol))
    return atoms


def atoms_from_xyz(path: str | os.PathLike, all_frames: bool = False):
    """ase.Atoms from an (extended) xyz file: its last frame, or with ``all_frames`` a list
    of all its frames (e.g. several start conformers).

    Raises FileNotFoundError / ValueError naming ``xyz``.
    """
    from ase.io import read

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"`xyz`: no such file {str(p)!r}")
    try:
        frames = read(p, index=":", format="extxyz")
    except Exception as exc:  # noqa: BLE001 - ase raises many kinds on bad input
        raise ValueError(f"`xyz`: could not read {str(p)!r} as xyz: {exc}") from exc
    if not frames:
        raise ValueError(f"`xyz`: {str(p)!r} holds no frames")
    for atoms in frames:
        if len(atoms) == 0:
            raise ValueError(f"`xyz`: {str(p)!r} holds no atoms")
        if not np.all(np.isfinite(atoms.get_positions())):
            raise ValueError(f"`xyz`: {str(p)!r} has non-finite coordinates")
        atoms.calc = None
        atoms.pbc = False
        atoms.cell = None
    return frames if all_frames else frames[-1]


def order_o_c_h(atoms):
    """Copy of ``atoms`` reordered O, C, H, then the other elements (stable within each)."""
    rank = {8: 0, 6: 1, 1: 2}
    z = atoms.get_atomic_numbers()
    order = sorted(range(len(z)), key=lambda i: (rank.get(int(z[i]), 3), i))
    return atoms[order]
