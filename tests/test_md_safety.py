"""Trajectory files nothing can corrupt and runs that never go on silently wrong: a second
writer, kill -9 at random instants (inside the state write and in the first milliseconds),
non-finite values, changed restart settings, the connectivity guard, CLI failures."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from ase.build import molecule
from ase.cluster import Icosahedron

import pymotor
from pymotor import MDError
from pymotor.trajectory import TrajectoryFileError, TrajectoryLockedError, lock_path, read_state

LJ = dict(epsilon_eV=0.0104, sigma_A=3.4, cutoff_A=8.5)
KW = dict(timestep_fs=4.0, temperature_K=40.0, tdamp_fs=100.0, seed=3)


@pytest.fixture(scope="module")
def cluster():
    return Icosahedron("Ar", 2)


def run(atoms, **kw):
    args = dict(KW, steps=100)
    args.update(kw)
    return pymotor.run_md(pymotor.LennardJonesPotential(**LJ), atoms, **args)


# A run in another process: the same LJ cluster; SLOW makes each step sleep (a Python
# callback around the C++ potential) so that the run lasts long enough to be disturbed.
CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from ase.cluster import Icosahedron
    import pymotor
    from pymotor import _core
    path, steps, chunk, slow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    lj = pymotor.LennardJonesPotential(epsilon_eV=0.0104, sigma_A=3.4, cutoff_A=8.5)
    pot = inner = lj.potential([18] * 13)
    if slow > 0:
        def f(x):
            time.sleep(slow)
            return inner.compute(x)
        pot = _core.CallbackPotential(f, "slow-lj")
    pymotor.run_md(pot, Icosahedron("Ar", 2), steps=steps, timestep_fs=4.0, temperature_K=40.0,
                   tdamp_fs=100.0, seed=3, chunk_steps=chunk, restart=path)
""")


def _child(path, steps, chunk, slow):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(steps), str(chunk), str(slow)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))


def _wait_for(path, proc, timeout=60.0):
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child ended early: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.0005)


def test_second_writer_is_refused_before_it_touches_the_file(cluster, tmp_path):
    path = tmp_path / "md.h5"
    proc = _child(path, 1500, 10, 0.005)  # >= 7.5 s: the three attempts fit in it on a busy machine
    try:
        _wait_for(path, proc)
        size = path.stat().st_size
        for kw in (dict(trajectory=path), dict(trajectory=path, overwrite=True), dict(restart=path)):
            assert proc.poll() is None, "the first writer ended before the attempt: lengthen it"
            with pytest.raises(TrajectoryLockedError, match=rf"{path.name} is being written by process {proc.pid}"):
                run(cluster, steps=10, **kw)
        with pytest.raises(TrajectoryLockedError, match=f"process {proc.pid}.*allow_running=True"):
            pymotor.read_trajectory(path)
        partial = pymotor.read_trajectory(path, allow_running=True)  # the frames flushed so far
        assert len(partial) >= 1 and path.stat().st_size >= size
        assert proc.wait(120) == 0, proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    t = pymotor.read_trajectory(path)  # the first run is intact and complete
    np.testing.assert_array_equal(t.step, np.arange(1501))


def test_restart_of_a_file_whose_writer_is_between_commits_is_refused(cluster, tmp_path):
    """A writer closes its HDF5 file between commits; a restart slipping into that gap must
    see the writer's lock (not read the growing file and complain about its settings)."""
    from pymotor.trajectory import FileLock

    path = tmp_path / "md.h5"
    run(cluster, steps=20, trajectory=path)
    held = FileLock(path)  # what the running writer holds, the h5 file itself closed
    try:
        with pytest.raises(TrajectoryLockedError, match=rf"{path.name} is being written by process {os.getpid()}"):
            run(cluster, steps=40, restart=path, timestep_fs=2.0)  # other settings: the lock comes first
    finally:
        held.release()
    assert len(run(cluster, steps=40, restart=path)) > 0  # released: the restart proceeds


def test_existing_trajectory_is_not_overwritten_without_asking(cluster, tmp_path):
    path = tmp_path / "done.h5"
    run(cluster, steps=100, trajectory=path)
    with pytest.raises(FileExistsError, match=r"done.h5 exists; continue that run with restart="):
        run(cluster, steps=10, trajectory=path)
    assert len(pymotor.read_trajectory(path)) == 101
    run(cluster, steps=10, trajectory=path, overwrite=True)
    assert len(pymotor.read_trajectory(path)) == 11
    with pytest.raises(ValueError, match="is a directory"):
        run(cluster, steps=10, trajectory=tmp_path)


def test_restart_of_a_file_that_does_not_exist_starts_the_run(cluster, tmp_path):
    path = tmp_path / "new.h5"
    first = run(cluster, steps=60, restart=path)  # one command for the first run ...
    assert path.is_file() and len(first) == 61
    again = run(cluster, steps=100, restart=path)  # ... and every resume
    ref = run(cluster, steps=100)
    np.testing.assert_array_equal(again.positions, ref.positions)


def test_random_kills_resume_bit_identically(cluster, tmp_path):
    """kill -9 at random instants of a run that commits its state every step (so many kills
    land inside a state write), a few within milliseconds of the file's creation; each
    resume with the same command continues, and the final trajectory equals an
    uninterrupted run bit for bit."""
    steps = 400
    ref = run(cluster, steps=steps)
    rng = np.random.default_rng(2026)
    path = tmp_path / "k.h5"
    kills = 0
    for attempt in range(12):
        proc = _child(path, steps, 1, 0.0)
        try:
            _wait_for(lock_path(path), proc)  # the writer exists; the file may not yet
            time.sleep(rng.uniform(0, 0.004) if attempt < 4 else rng.uniform(0.0, 0.25))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(30)
        finally:
            proc.kill()
            proc.wait()
            proc.stderr.close()
        if path.exists():
            st = read_state(path)  # never a mixed or unreadable state
            t = pymotor.read_trajectory(path)
            assert t.step[-1] >= int(st["step"])
            k = int(st["step"])
            np.testing.assert_array_equal(st["positions"], ref.positions[k])  # state = that step exactly
    assert kills >= 8
    final = run(cluster, steps=steps, restart=path, chunk_steps=1)  # warnings are errors in the suite
    np.testing.assert_array_equal(final.step, ref.step)
    np.testing.assert_array_equal(final.positions, ref.positions)
    np.testing.assert_array_equal(final.velocities, ref.velocities)
    np.testing.assert_array_equal(final.conserved_energy, ref.conserved_energy)


def test_file_killed_before_its_first_frame_restarts_from_scratch(cluster, tmp_path):
    path = tmp_path / "empty.h5"
    import h5py

    with h5py.File(path, "w") as f:  # what an old writer left when killed in its first ms
        f.create_group("h5md")
    with pytest.warns(RuntimeWarning, match="killed before its first frame was saved; starting"):
        t = run(cluster, steps=20, restart=path)
    assert len(t) == 21
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # truncated: unreadable
    with pytest.warns(RuntimeWarning, match="from scratch"):
        run(cluster, steps=20, restart=path)
    big = tmp_path / "corrupt.h5"
    big.write_bytes(os.urandom(200_000))  # a damaged file with content: never deleted silently
    with pytest.raises(TrajectoryFileError, match=r"`restart`: .*corrupt.h5 is not a readable HDF5 file"):
        run(cluster, steps=20, restart=big)
    assert big.stat().st_size == 200_000


def test_non_finite_values_stop_the_run(cluster, tmp_path):
    eth = molecule("CH3CH2OH")
    centers = eth.positions.copy()
    pot = pymotor.HarmonicPotential(5.0, centers)
    with pytest.raises(MDError, match="non-finite") as exc:
        pymotor.run_md(pot, eth, steps=50, timestep_fs=1e6, temperature_K=300.0, thermostat=None,
                       on_bond_change="ignore", max_force_eV_per_A=1e300)
    assert exc.value.step == 1 or exc.value.reason in ("non-finite", "force-limit")

    calls = {"n": 0}

    def nan_force(x):  # a potential that returns NaN for atom 5 from its 30th call
        calls["n"] += 1
        e, f = pot.potential(eth.numbers).compute(x)
        if calls["n"] >= 30:
            f[:, 5, 1] = np.nan
        return e, f

    path = tmp_path / "nan.h5"
    with pytest.raises(MDError, match=r"step 29 .*non-finite force of atom 5;") as exc:
        pymotor.run_md(pymotor._core.CallbackPotential(nan_force, "nan"), eth, steps=100, timestep_fs=0.5,
                       trajectory=path, chunk_steps=10, on_bond_change="ignore")
    assert (exc.value.step, exc.value.atom, exc.value.reason) == (29, 5, "non-finite")
    t = pymotor.read_trajectory(path)
    assert t.step[-1] == 28 and np.all(np.isfinite(t.forces))

    bad = eth.copy()
    v = np.zeros((len(bad), 3))
    v[2, 0] = np.inf
    bad.set_velocities(v)
    with pytest.raises(ValueError, match=r"non-finite velocity \(atom 2"):
        pymotor.run_md(pot, bad, steps=5)
    nanmass = eth.copy()
    m = nanmass.get_masses()
    m[3] = np.nan
    nanmass.set_masses(m)
    with pytest.raises(ValueError, match=r"non-finite mass \(atom 3"):
        pymotor.run_md(pot, nanmass, steps=5)


def test_restart_state_is_validated(cluster, tmp_path):
    import h5py

    path = tmp_path / "s.h5"
    run(cluster, steps=20, trajectory=path)
    with h5py.File(path, "r+") as f:
        slot = f"pymotor/state{int(f['pymotor'].attrs['state_slot'])}"
        pos = f[slot]["positions"][()]
        pos[4, 2] = np.nan
        f[slot]["positions"][...] = pos
    with pytest.raises(ValueError, match=r"`restart` .*s.h5 state `positions` has a non-finite value .* \(4, 2\)"):
        run(cluster, steps=40, restart=path)
    with h5py.File(path, "r+") as f:
        del f[f"pymotor/state{int(f['pymotor'].attrs['state_slot'])}"]["velocities"]
    with pytest.raises(TrajectoryFileError, match="lacks velocities"):
        run(cluster, steps=40, restart=path)
    other = tmp_path / "o.h5"
    run(cluster, steps=20, trajectory=other)
    with pytest.raises(ValueError, match="different molecule.*13 atoms, `atoms` has 55"):
        run(Icosahedron("Ar", 3), steps=40, restart=other)


def test_changed_settings_are_refused_or_recorded(cluster, tmp_path):
    path = tmp_path / "c.h5"
    run(cluster, steps=40, trajectory=path)
    with pytest.raises(ValueError, match=r"temperature_K: 40.0 -> 80.0; interval: 1 -> 2.*change_settings=True"):
        run(cluster, steps=80, restart=path, temperature_K=80.0, interval=2)
    heavy = cluster.copy()
    heavy.set_masses(heavy.get_masses() * 2)
    with pytest.raises(ValueError, match=r"masses: atom 0"):
        run(heavy, steps=80, restart=path)
    with pytest.raises(ValueError, match=r"potential: "):
        pymotor.run_md(pymotor.LennardJonesPotential(0.02, 3.4, 8.5), cluster, steps=80, restart=path, **KW)
    assert len(pymotor.read_trajectory(path)) == 41  # refused before anything was written
    t = run(cluster, steps=80, restart=path, temperature_K=80.0, change_settings=True)
    assert t.metadata["temperature_K"] == 80.0
    assert t.metadata["setting_changes"] == [{"step": 40, "changes": {"temperature_K": [40.0, 80.0]}}]
    assert len(t) == 81


def test_replicas_keep_their_own_momenta(cluster):
    a, b = cluster.copy(), cluster.copy()
    v = np.random.default_rng(0).normal(size=(len(a), 3)) * 0.002
    v -= v.mean(0)
    a.set_velocities(v / pymotor.units.FS_IN_ASE_TIME)
    t = run([a, b], steps=0)
    np.testing.assert_allclose(t[0].velocities[0], v, rtol=1e-12)
    assert np.abs(t[1].velocities[0]).sum() > 0  # drawn at temperature_K
    assert not np.allclose(t[1].velocities[0], v)


def _pulled_hydrogen():
    """Ethanol with one H tethered 3 Angstrom away from its carbon: the C-H bond breaks."""
    eth = molecule("CH3CH2OH")
    bonded = pymotor.connectivity.bonds(eth.numbers, eth.positions)
    h, c = next((int(j), int(i)) for i, j in bonded if eth.numbers[j] == 1 and eth.numbers[i] == 6)
    centers = eth.positions.copy()
    centers[h] += 3.0 * (centers[h] - centers[c]) / np.linalg.norm(centers[h] - centers[c])
    return eth, h, pymotor.HarmonicPotential(2.0, centers)


def test_connectivity_guard_stops_or_records(tmp_path):
    eth, h, pot = _pulled_hydrogen()
    bonded = pymotor.connectivity.bonds(eth.numbers, eth.positions)
    partner = [int(i if j == h else j) for i, j in bonded if h in (i, j)]
    assert len(partner) == 1
    kw = dict(steps=400, timestep_fs=0.5, temperature_K=10.0, thermostat=None, chunk_steps=50)
    with pytest.raises(MDError, match=rf"connectivity changed at step \d+ .*bond between atoms "
                                      rf"{min(h, partner[0])} and {max(h, partner[0])} broke") as exc:
        pymotor.run_md(pot, eth, on_bond_change="stop", trajectory=tmp_path / "stop.h5", **kw)
    assert exc.value.reason == "bond-change" and exc.value.step > 0
    stopped = pymotor.read_trajectory(tmp_path / "stop.h5")
    assert stopped.step[-1] == exc.value.step - 1
    d = np.linalg.norm(stopped.positions[-1, h] - stopped.positions[-1, partner[0]])
    assert d <= pymotor.connectivity.BREAK_FACTOR * 1.07  # the last saved frame is still bonded

    with pytest.warns(RuntimeWarning, match=rf"MD step {exc.value.step}: the bond broke between atoms"):
        t = pymotor.run_md(pot, eth, trajectory=tmp_path / "rec.h5", **kw)
    assert len(t) == 401  # recorded, and the run went on
    ev = t.metadata["bond_events"]
    assert ev[0]["step"] == exc.value.step and not ev[0]["formed"]
    assert {ev[0]["i"], ev[0]["j"]} == {h, partner[0]}
    # the same events as the report's post-hoc check of the frames
    post = pymotor.connectivity.bond_events(t.atomic_numbers, t.positions)
    assert (post[0].frame, post[0].i, post[0].j) == (exc.value.step, ev[0]["i"], ev[0]["j"])
    # ignore: no check, no event
    t2 = pymotor.run_md(pot, eth, on_bond_change="ignore", **kw)
    np.testing.assert_array_equal(t2.positions, t.positions)


def test_threads_are_restored(cluster):
    from pymotor import _core

    _core.set_num_threads(2)
    try:
        run(cluster, steps=5, torch_threads=1)
        assert _core.get_num_threads() == 2
    finally:
        _core.set_num_threads(1)


def test_potential_exception_reaches_the_caller_as_itself(cluster, tmp_path):
    from ase.calculators.lj import LennardJones

    class PlantedError(Exception):
        pass

    calls = {"n": 0}

    class Failing(LennardJones):
        def calculate(self, *a, **k):
            calls["n"] += 1
            if calls["n"] == 18:
                raise PlantedError("SCF did not converge (planted)")
            super().calculate(*a, **k)

    path = tmp_path / "f.h5"
    with pytest.raises(PlantedError, match="planted") as exc:
        pymotor.run_md(Failing(epsilon=0.0104, sigma=3.4, rc=8.5, smooth=False), cluster, steps=50,
                       trajectory=path, chunk_steps=5, **KW)
    cause = exc.value.__cause__
    assert isinstance(cause, MDError) and cause.step == 17 and cause.paths == [path]
    assert "PlantedError: SCF did not converge (planted)" in cause.detail
    assert any("calculate" in str(tb) for tb in __import__("traceback").extract_tb(exc.value.__traceback__))


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pymotor.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)


def test_cli_failures_are_one_line(tmp_path):
    zero = tmp_path / "zero.h5"
    zero.write_bytes(b"")
    r = _cli("compare", str(zero), str(zero), "--out", str(tmp_path / "rep"))
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    bad = tmp_path / "bad.xyz"
    bad.write_text("not an xyz file\n")
    r = _cli("md", "--xyz", str(bad), "--no-xtb", "--steps", "5", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "`xyz`" in r.stderr and "Traceback" not in r.stderr, r.stderr
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = _cli("md", "--no-xtb", "--steps", "5", "--out", str(afile))
    assert r.returncode != 0 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    notmodel = tmp_path / "m.pt"
    notmodel.write_bytes(b"PK\x03\x04 not a model")
    r = _cli("md", "--no-xtb", "--steps", "5", "--model", str(notmodel), "--out", str(tmp_path / "o2"))
    assert r.returncode != 0 and "Traceback" not in r.stderr and "m.pt" in r.stderr, r.stderr
    r = _cli("md", "--no-xtb", "--steps", "200", "--timestep-fs", "10", "--out", str(tmp_path / "o3"),
             "--on-bond-change", "stop")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert ("blew up at step" in r.stderr or "connectivity changed at step" in r.stderr), r.stderr
    r = _cli("md", "--no-xtb", "--steps", "200", "--timestep-fs", "10", "--out", str(tmp_path / "o4"),
             "--on-bond-change", "stop", "--debug")
    assert "Traceback" in r.stderr
