"""Molecular dynamics with pymotor's C++ engine: :func:`run_md`.

The run is assembled from parts, one module each:

* :mod:`~pymotor.md.settings` -- :class:`MDSettings`, the validated parameters of a run
  (written to and compared with the H5MD file's attributes);
* :mod:`~pymotor.md.start` -- the start state: velocities (Maxwell-Boltzmann, angular
  momentum removed), the merge with a restart file, the degrees of freedom;
* :mod:`~pymotor.md.recorder` -- :class:`Recorder`, which owns the H5MD writers, the
  in-memory frames and the atomically committed restart state;
* :mod:`~pymotor.md.run` -- :func:`run_md`, the chunk loop (C++ without the GIL);
* :mod:`~pymotor.md.errors` -- :class:`MDError`.
"""
from .errors import MDError
from .run import run_md
from .settings import MDSettings
from .start import default_n_dof, maxwell_boltzmann_velocities, remove_angular_momentum

__all__ = ["run_md", "MDError", "MDSettings", "default_n_dof", "maxwell_boltzmann_velocities",
           "remove_angular_momentum"]
