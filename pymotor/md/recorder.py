"""The recorder of an MD run: H5MD writers (one per replica), in-memory frames for replicas
without a file, the restart state committed after every chunk, and connectivity events."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..trajectory import H5MDWriter, Trajectory, read_trajectory


class Recorder:
    """Owns everything a run writes. ``paths[r]`` is None for a replica kept in memory;
    ``append[r]`` continues an existing file (a restart) instead of creating one."""

    def __init__(self, paths: list[Path | None], append: list[bool], template, attrs: dict,
                 overwrite: bool = False):
        self.paths = paths
        self.template = template
        self.masses = np.asarray(template.get_masses())
        self.attrs = attrs
        self.writers: list[H5MDWriter | None] = []
        self.memory: list[dict] = []
        self.events: list[tuple] = []  # (step, replica, i, j, formed, distance) of this call
        try:
            for p, app in zip(paths, append):
                self.writers.append(None if p is None else
                                    H5MDWriter(p, template.numbers, self.masses, attrs, append=app,
                                               overwrite=overwrite))
        except BaseException:
            self.close()
            raise

    @property
    def saved(self) -> list[Path]:
        return [p for p in self.paths if p is not None]

    def truncate_after(self, step: int) -> None:
        for w in self.writers:
            if w is not None:
                w.truncate_after(step)

    def record_change(self, step: int, changes: dict) -> None:
        for w in self.writers:
            if w is not None:
                w.record_change(step, changes, self.attrs)

    def frames(self, frames: dict) -> None:
        """Append a chunk's frames (arrays (F, R, ...))."""
        for r, w in enumerate(self.writers):
            if w is not None:
                w.append(frames, r)
        if any(w is None for w in self.writers):
            self.memory.append(frames)

    def bond_events(self, res: dict) -> None:
        ev, dist = res["bond_events"], res["bond_event_distance_A"]
        for k in range(len(ev)):
            step, r, i, j, formed = (int(x) for x in ev[k])
            self.events.append((step, r, i, j, bool(formed), float(dist[k])))
        for r, w in enumerate(self.writers):
            if w is not None and len(ev):
                mine = ev[:, 1] == r
                w.append_bond_events(ev[mine][:, [0, 2, 3, 4]], dist[mine])

    def commit(self, sim) -> None:
        """Write every replica's restart state atomically (the C++ getters copy: read once)."""
        if all(w is None for w in self.writers):
            return
        eta, p_eta = sim.thermostat_state()
        pos, vel = sim.positions, sim.velocities
        for r, w in enumerate(self.writers):
            if w is not None:
                w.write_state(dict(positions=pos[r], velocities=vel[r], step=sim.step, time_fs=sim.time_fs,
                                   timestep_fs=float(self.attrs["timestep_fs"]),
                                   eta=None if eta is None else eta[r], p_eta=None if p_eta is None else p_eta[r],
                                   bonds=sim.bonds(r)))

    def publish(self) -> None:
        """Move new files into place: from now on they are readable and restartable."""
        for w in self.writers:
            if w is not None:
                w.publish()

    def close(self) -> None:
        for w in self.writers:
            if w is not None:
                w.close()

    def trajectories(self, n_dof: float) -> list[Trajectory]:
        out = []
        cat = None  # the in-memory frames of all replicas, joined once (not once per replica)
        for r, p in enumerate(self.paths):
            if p is None and cat is None:
                memory = self.memory
                cat = {k: np.concatenate([m[k] for m in memory]) for k in memory[0]
                       if isinstance(memory[0][k], np.ndarray) and k in _FRAME_KEYS}
            out.append(read_trajectory(p) if p is not None else self._from_memory(cat, r, n_dof))
        return out

    def _from_memory(self, cat: dict, r: int, n_dof: float) -> Trajectory:
        meta = dict(self.attrs)
        meta["bond_events"] = [dict(step=e[0], i=e[2], j=e[3], formed=e[4], distance_A=e[5])
                               for e in self.events if e[1] == r]
        return Trajectory(atomic_numbers=self.template.numbers.copy(), masses=self.masses, step=cat["step"],
                          time_fs=cat["time_fs"], positions=cat["positions"][:, r],
                          velocities=cat["velocities"][:, r], forces=cat["forces"][:, r],
                          potential_energy=cat["potential_energy"][:, r],
                          kinetic_energy=cat["kinetic_energy"][:, r],
                          conserved_energy=cat["conserved_energy"][:, r], n_dof=n_dof, metadata=meta)


_FRAME_KEYS = ("step", "time_fs", "positions", "velocities", "forces", "potential_energy", "kinetic_energy",
               "conserved_energy")


def current_frame(sim) -> dict:
    """The simulation's present state as a one-frame chunk."""
    return dict(step=np.array([sim.step]), time_fs=np.array([sim.time_fs]),
                positions=sim.positions[None], velocities=sim.velocities[None], forces=sim.forces[None],
                potential_energy=sim.potential_energy[None], kinetic_energy=sim.kinetic_energy[None],
                conserved_energy=sim.conserved_energy[None])
