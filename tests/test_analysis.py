"""pymotor.analysis against trusted references on the same data: scipy, MDAnalysis,
MDTraj, and direct numpy sums; plus invariants and input validation."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.spatial.transform import Rotation

from pymotor import analysis
from pymotor.units import AMU_A2_PER_FS2_IN_EV

SPEED_OF_LIGHT_CM_PER_FS = 2.99792458e-5


# ---- data -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def motor():
    """The 48-atom CPNX motor: (positions (N, 3) Angstrom, masses amu, atomic numbers)."""
    import pymotor

    atoms = pymotor.data.cpnx()
    return atoms.get_positions(), atoms.get_masses(), atoms.get_atomic_numbers()


def thermal_trajectory(x0, n_frames, seed, sigma=0.15, tumble=True):
    """Noisy copies of x0, each frame rigidly rotated and translated at random."""
    rng = np.random.default_rng(seed)
    pos = x0[None] + sigma * rng.normal(size=(n_frames, *x0.shape))
    if tumble:
        rot = Rotation.random(n_frames, random_state=seed).as_matrix()
        pos = np.einsum("tab,tnb->tna", rot, pos) + rng.normal(scale=5.0, size=(n_frames, 1, 3))
    return pos


@pytest.fixture(scope="module")
def traj(motor):
    return thermal_trajectory(motor[0], 120, seed=7)


def mda_universe(positions, masses):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(positions.shape[1], trajectory=True)
    u.add_TopologyAttr("masses", masses)
    u.load_new(np.asarray(positions, dtype=np.float32), format=MemoryReader)
    return u


def md_trajectory(positions):
    import mdtraj

    top = mdtraj.Topology()
    res = top.add_residue("MOL", top.add_chain())
    for i in range(positions.shape[1]):
        top.add_atom(f"C{i}", mdtraj.element.carbon, res)
    return mdtraj.Trajectory(np.asarray(positions, dtype=np.float32) / 10.0, top)  # nm


def kabsch_numpy(x, y, w):
    """Weighted Kabsch by SVD: R minimising sum w |R x - y|^2 (x, y centred)."""
    h = (x * w[:, None]).T @ y
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def rmsf_numpy(pos, w):
    """AverageStructure(ref_frame=0) + AlignTraj + RMSF, in float64 numpy."""
    def centred(x):
        return x - (w @ x) / w.sum()

    def align_all(ref):
        out = np.empty_like(pos)
        for t, x in enumerate(pos):
            xc = centred(x)
            out[t] = xc @ kabsch_numpy(xc, ref, w).T
        return out

    avg = align_all(centred(pos[0])).mean(0)
    aligned = align_all(centred(avg))
    return np.sqrt(((aligned - aligned.mean(0)) ** 2).sum(-1).mean(0))


# ---- pairwise distances -------------------------------------------------------------------
def test_pairwise_distances_equal_scipy_pdist(traj):
    d = analysis.pairwise_distances(traj)
    assert d.shape == (120, 48 * 47 // 2) == (120, 1128)
    assert d.dtype == np.float64
    np.testing.assert_allclose(d, np.array([pdist(x) for x in traj]), rtol=0, atol=1e-12)


def test_pairwise_distances_equal_mdanalysis_and_mdtraj(traj):
    import mdtraj
    from MDAnalysis.lib.distances import self_distance_array

    d = analysis.pairwise_distances(traj)
    u = mda_universe(traj, np.ones(48))
    ref_mda = np.array([self_distance_array(u.atoms.positions) for _ in u.trajectory])
    np.testing.assert_allclose(d, ref_mda, atol=2e-4)  # MDAnalysis holds float32 coordinates
    i, j = np.triu_indices(48, k=1)
    ref_md = mdtraj.compute_distances(md_trajectory(traj), np.c_[i, j], periodic=False) * 10.0
    np.testing.assert_allclose(d, ref_md, atol=2e-4)


def test_pairwise_distances_two_atoms_and_one_frame():
    x = np.array([[[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]])
    np.testing.assert_array_equal(analysis.pairwise_distances(x), [[5.0]])


# ---- radius of gyration -----------------------------------------------------------------
def test_radius_of_gyration_equals_mdanalysis_mdtraj_numpy(traj, motor):
    import mdtraj

    masses = motor[1]
    rg = analysis.radius_of_gyration(traj, masses)
    com = np.einsum("n,tna->ta", masses, traj) / masses.sum()
    ref = np.sqrt(np.einsum("n,tn->t", masses, ((traj - com[:, None]) ** 2).sum(-1)) / masses.sum())
    np.testing.assert_allclose(rg, ref, rtol=1e-13)
    u = mda_universe(traj, masses)
    np.testing.assert_allclose(rg, [u.atoms.radius_of_gyration() for _ in u.trajectory], atol=1e-4)
    # MDTraj weights the squared distances by mass but centres them on the unweighted
    # centroid c; Sum w|r - c|^2 / Sum w = Rg^2 + |com - c|^2 relates the two exactly.
    ref_md = mdtraj.compute_rg(md_trajectory(traj), masses=masses) * 10.0
    shift2 = ((com - traj.mean(1)) ** 2).sum(-1)
    np.testing.assert_allclose(np.sqrt(rg**2 + shift2), ref_md, atol=1e-4)
    ref_md_equal = mdtraj.compute_rg(md_trajectory(traj)) * 10.0
    np.testing.assert_allclose(analysis.radius_of_gyration(traj, np.ones(48)), ref_md_equal, atol=1e-4)
    # masses=None weighs all atoms equally
    np.testing.assert_allclose(analysis.radius_of_gyration(traj), analysis.radius_of_gyration(traj, np.ones(48)))


# ---- RMSF ---------------------------------------------------------------------------------
def test_rmsf_equals_mdanalysis_average_align_rmsf(traj, motor):
    from MDAnalysis.analysis import align, rms

    masses = motor[1]
    f = analysis.rmsf(traj, masses)
    assert f.shape == (48,) and f.dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MDAnalysis: no dt / no box information
        u_avg = mda_universe(traj, masses)
        average = align.AverageStructure(u_avg, u_avg, select="all", weights="mass", ref_frame=0).run()
        u = mda_universe(traj, masses)
        align.AlignTraj(u, average.results.universe, select="all", weights="mass", in_memory=True).run()
        ref = rms.RMSF(u.atoms).run().results.rmsf
    np.testing.assert_allclose(f, ref, atol=2e-4)  # MDAnalysis works in float32
    np.testing.assert_allclose(f, rmsf_numpy(traj, masses), rtol=1e-9, atol=1e-11)
    assert 0.05 < f.mean() < 0.5  # sigma = 0.15 A per component: ~0.26 A


def test_rmsf_unweighted_and_iterated(traj, motor):
    f1 = analysis.rmsf(traj)
    np.testing.assert_allclose(f1, rmsf_numpy(traj, np.ones(48)), rtol=1e-9, atol=1e-11)
    f_it, avg = analysis.rmsf(traj, motor[1], max_iter=50, tol=1e-10, return_average=True)
    assert avg.shape == (48, 3)
    np.testing.assert_allclose(avg.T @ motor[1] / motor[1].sum(), 0.0, atol=1e-10)  # centred
    np.testing.assert_allclose(f_it, analysis.rmsf(traj, motor[1]), atol=1e-3)  # one pass is close


def test_rmsf_of_identical_frames_is_zero(motor):
    pos = np.repeat(motor[0][None], 10, axis=0)
    np.testing.assert_allclose(analysis.rmsf(pos, motor[1]), 0.0, atol=1e-7)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rigid_motion_leaves_rmsf_distances_rg_unchanged(motor, seed):
    x0, masses, _ = motor
    still = thermal_trajectory(x0, 60, seed=10 + seed, tumble=False)
    rng = np.random.default_rng(seed)
    rot = Rotation.random(60, random_state=seed).as_matrix()
    moved = np.einsum("tab,tnb->tna", rot, still) + rng.normal(scale=20.0, size=(60, 1, 3))
    np.testing.assert_allclose(analysis.rmsf(moved, masses), analysis.rmsf(still, masses), atol=1e-10)
    np.testing.assert_allclose(analysis.pairwise_distances(moved), analysis.pairwise_distances(still), atol=1e-10)
    np.testing.assert_allclose(analysis.radius_of_gyration(moved, masses),
                               analysis.radius_of_gyration(still, masses), atol=1e-10)


@pytest.mark.parametrize("shape", ["linear", "planar"])
def test_rmsf_of_degenerate_geometries(shape):
    # linear and planar molecules make the superposition eigenproblem (nearly) degenerate
    rng = np.random.default_rng(5)
    n, t = 6, 40
    x0 = np.zeros((n, 3))
    x0[:, 0] = 1.4 * np.arange(n)
    if shape == "planar":
        x0[:, 1] = rng.normal(size=n)
    noise = 0.1 * rng.normal(size=(t, n, 3))
    noise[:, :, 2] = 0.0
    if shape == "linear":
        noise[:, :, 1] = 0.0
    still = x0 + noise
    rot = Rotation.random(t, random_state=6).as_matrix()
    moved = np.einsum("tab,tnb->tna", rot, still) + rng.normal(size=(t, 1, 3))
    w = rng.uniform(1, 16, size=n)
    np.testing.assert_allclose(analysis.rmsf(moved, w), rmsf_numpy(still, w), atol=1e-9)


# ---- dihedrals ----------------------------------------------------------------------------
def test_dihedrals_equal_mdtraj_and_mdanalysis(traj):
    import mdtraj
    from MDAnalysis.lib.distances import calc_dihedrals

    rng = np.random.default_rng(3)
    quads = np.array([rng.choice(48, 4, replace=False) for _ in range(30)])
    phi = analysis.dihedrals(traj, quads)
    assert phi.shape == (120, 30)
    ref_md = np.degrees(mdtraj.compute_dihedrals(md_trajectory(traj), quads, periodic=False))
    np.testing.assert_allclose(phi, ref_md, atol=5e-3)
    a, b, c, d = (np.ascontiguousarray(traj[:, quads[:, k]].reshape(-1, 3)) for k in range(4))
    ref_mda = np.degrees(calc_dihedrals(a, b, c, d)).reshape(120, 30)
    np.testing.assert_allclose(phi, ref_mda, atol=5e-3)  # computed in float32
    # float64 reference by the projection formula (a different route from the kernel's)
    b0, b1, b2 = a - b, c - b, d - c
    b1 /= np.linalg.norm(b1, axis=1, keepdims=True)
    v = b0 - (b0 * b1).sum(1, keepdims=True) * b1
    w = b2 - (b2 * b1).sum(1, keepdims=True) * b1
    ref64 = np.degrees(np.arctan2((np.cross(b1, v) * w).sum(1), (v * w).sum(1))).reshape(120, 30)
    np.testing.assert_allclose(phi, ref64, atol=1e-9)


def test_dihedral_sign_convention():
    # a-b along -y, b-c along +x, c-d along +z. Looking along b->c (+x into the page) -y
    # points left and +z down: the front bond turns 90 deg anticlockwise onto the rear
    # bond, negative in the IUPAC convention.
    x = np.array([[[0.0, -1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]])
    phi = analysis.dihedrals(x, [0, 1, 2, 3])
    assert phi.shape == (1, 1)
    assert phi[0, 0] == pytest.approx(-90.0)
    np.testing.assert_allclose(analysis.dihedrals(x * [1, 1, -1], [0, 1, 2, 3]), [[90.0]])  # mirror
    anti = x.copy()
    anti[0, 3] = [1.0, 1.0, 0.0]  # rear bond opposite to the front bond
    assert abs(analysis.dihedrals(anti, [0, 1, 2, 3])[0, 0]) == pytest.approx(180.0)


# ---- FFT, VACF and power spectrum -------------------------------------------------------
@pytest.mark.parametrize("m", [1, 2, 8, 1024, 1 << 14, 1 << 15])
def test_core_fft_equals_numpy(m):
    from pymotor import _core

    rng = np.random.default_rng(m)
    z = rng.normal(size=m) + 1j * rng.normal(size=m)
    scale = np.sqrt(m)
    np.testing.assert_allclose(_core.analysis.fft(z), np.fft.fft(z), atol=1e-13 * scale * np.log2(2 * m))
    np.testing.assert_allclose(_core.analysis.fft(z, True) / m, np.fft.ifft(z), atol=1e-15 * np.log2(2 * m))


def vacf_direct(v, w=None):
    t, n, _ = v.shape
    w = np.ones(n) if w is None else w
    return np.array([np.einsum("tia,tia,i->", v[: t - k], v[k:], w) / ((t - k) * 3 * w.sum())
                     for k in range(t)])


@pytest.mark.parametrize("n_frames", [1, 2, 3, 64, 257, 500])
def test_vacf_fft_equals_direct_sum(n_frames, motor):
    rng = np.random.default_rng(n_frames)
    v = np.cumsum(rng.normal(size=(n_frames, 7, 3)), axis=0) * 0.01  # correlated in time
    np.testing.assert_allclose(analysis.vacf(v, normalize=False), vacf_direct(v), rtol=1e-10, atol=1e-15)
    w = rng.uniform(1.0, 16.0, size=7)
    c = analysis.vacf(v, masses=w, normalize=False)
    np.testing.assert_allclose(c, vacf_direct(v, w), rtol=1e-10, atol=1e-15)
    cn = analysis.vacf(v, masses=w)
    assert cn[0] == pytest.approx(1.0)
    # FFT round-off is relative to the peak c[0] (= 1 after normalisation), not to each lag
    np.testing.assert_allclose(cn, c / c[0], rtol=1e-12, atol=1e-13)


def test_vacf_equals_mdanalysis_transport_analysis():
    """Same numbers as the MDAnalysis MDAKit VelocityAutocorr (tidynamics), which sums the
    three components and averages over atoms (= 3 x pymotor's per-component mean)."""
    mda = pytest.importorskip("MDAnalysis")
    ta = pytest.importorskip("transport_analysis.velocityautocorr")
    from MDAnalysis.coordinates.memory import MemoryReader

    rng = np.random.default_rng(5)
    v = np.cumsum(rng.normal(size=(300, 6, 3)), axis=0) * 0.01
    u = mda.Universe.empty(6, trajectory=True, velocities=True)
    u.load_new(np.zeros_like(v, dtype=np.float32), format=MemoryReader, velocities=v)
    ref = ta.VelocityAutocorr(u.atoms, fft=True).run().results.timeseries
    # MemoryReader stores float32 velocities: agreement to float32 round-off of the peak
    np.testing.assert_allclose(3.0 * analysis.vacf(v, normalize=False), ref, rtol=1e-5, atol=1e-6 * ref[0])


def harmonic_velocities(n_frames, dt_fs, wavenumbers, masses, seed=0):
    """Exact velocities of independent 3D harmonic oscillators with random phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None, None] * dt_fs
    omega = 2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS * np.asarray(wavenumbers)[None, :, None]
    phase = rng.uniform(0, 2 * np.pi, size=(1, len(wavenumbers), 3))
    amp = 1.0 / np.sqrt(np.asarray(masses))[None, :, None]
    return -amp * omega * np.sin(omega * t + phase)


def test_power_spectrum_peak_at_harmonic_oscillator_frequency():
    # an O-H-like oscillator: k = 48 eV/A^2, reduced mass 16*1/17 amu
    k_ev_a2, mu = 48.0, 16.0 / 17.0
    omega_per_fs = np.sqrt(k_ev_a2 / (mu * AMU_A2_PER_FS2_IN_EV))
    nu0 = omega_per_fs / (2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS)  # analytic, cm^-1
    assert 3000 < nu0 < 4000
    dt = 0.5
    v = harmonic_velocities(4000, dt, [nu0], [mu])
    for window in ("hann", None):
        nu, p = analysis.power_spectrum(v, timestep_fs=dt, window=window)
        assert nu[0] == 0 and nu[-1] == pytest.approx(1.0 / (2 * dt * SPEED_OF_LIGHT_CM_PER_FS))
        assert abs(nu[np.argmax(p)] - nu0) <= nu[1]  # within one grid spacing (~4 cm^-1)
        assert np.all(p >= 0)


def test_power_spectrum_of_harmonic_md_run(motor, tmp_path):
    """CPNX atoms tethered by springs (k = 20 eV/A^2), NVE with pymotor's integrator: the
    H and C spectra peak at sqrt(k/m)/(2 pi c) of their masses."""
    import pymotor

    atoms = pymotor.data.cpnx()
    k = 20.0
    traj = pymotor.run_md(pymotor.HarmonicPotential(k, atoms.get_positions()), atoms, steps=4000,
                          timestep_fs=0.25, thermostat=None, temperature_K=300.0, interval=2,
                          trajectory=tmp_path / "harmonic.h5")
    for z, mass in ((1, 1.008), (6, 12.011)):
        sel = atoms.numbers == z
        nu, p = analysis.power_spectrum(traj.velocities[:, sel], timestep_fs=0.5)
        nu0 = np.sqrt(k / (mass * AMU_A2_PER_FS2_IN_EV)) / (2 * np.pi * SPEED_OF_LIGHT_CM_PER_FS)
        assert abs(nu[np.argmax(p)] - nu0) <= nu[1], (z, nu[np.argmax(p)], nu0)
    # the same file, streamed: the VACF of the H5MD velocities equals the in-memory one
    c = analysis.VACF(tmp_path / "harmonic.h5").run().results.vacf
    np.testing.assert_allclose(c, analysis.vacf(traj.velocities), atol=1e-12)


def test_power_spectrum_two_oscillators_and_parseval():
    dt = 1.0
    v = harmonic_velocities(3000, dt, [800.0, 1700.0], [12.0, 1.0], seed=4)
    nu, p = analysis.power_spectrum(v, timestep_fs=dt, window=None)
    # Parseval: the one-sided density integrates to the mean-square velocity per component
    assert np.sum(p) * nu[1] == pytest.approx(np.mean(v**2), rel=1e-10)
    nu, p = analysis.power_spectrum(v, timestep_fs=dt, masses=[12.0, 1.0])
    peaks = sorted(nu[np.argsort(p)[-1:]].tolist() + nu[[np.argmax(np.where(nu < 1200, p, 0))]].tolist())
    assert peaks[0] == pytest.approx(800.0, abs=2 * nu[1])
    assert peaks[1] == pytest.approx(1700.0, abs=2 * nu[1])
    nu2, p2 = analysis.power_spectrum(v, timestep_fs=dt, pad_to=4096)
    assert nu2.shape == (2049,)


# ---- rolling Pearson ------------------------------------------------------------------------
@pytest.mark.parametrize("window", [2, 3, 100, 250, 999, 1000])
def test_rolling_pearson_equals_corrcoef_per_window(window):
    rng = np.random.default_rng(window)
    n = 1000
    # energy-like series: large offset, slow drift, small fluctuations
    x = -12345.678 + 1e-3 * np.arange(n) + 0.05 * rng.normal(size=n)
    y = 0.6 * (x + 12345.678) - 9876.5 + 0.04 * rng.normal(size=n)
    r = analysis.rolling_pearson(x, y, window=window)
    assert r.shape == (n - window + 1,)
    ref = np.array([np.corrcoef(x[k:k + window], y[k:k + window])[0, 1] for k in range(n - window + 1)])
    np.testing.assert_allclose(r, ref, atol=1e-9 if window > 2 else 1e-6)


def test_rolling_pearson_constant_window_is_nan():
    x = np.r_[np.ones(10), np.arange(10.0)]
    y = np.arange(20.0)
    r = analysis.rolling_pearson(x, y, window=5)
    assert np.isnan(r[:6]).all()
    np.testing.assert_allclose(r[10:], 1.0)


# ---- streaming from H5MD in chunks ------------------------------------------------------------
def write_h5md(path, positions, velocities, masses, numbers, dt_fs=0.5):
    """A minimal file in the layout of docs/ARCHITECTURE.md, written with h5py."""
    import h5py

    t = positions.shape[0]
    with h5py.File(path, "w") as f:
        f.create_group("h5md").attrs["version"] = [1, 1]
        g = f.create_group("particles/trajectory")
        for name, data in (("position", positions), ("velocity", velocities)):
            sub = g.create_group(name)
            sub["step"] = np.arange(t)
            sub["time"] = np.arange(t) * dt_fs
            sub.create_dataset("value", data=data, chunks=(16, data.shape[1], 3))
        g["species"] = np.asarray(numbers, dtype=np.int32)
        g["mass"] = np.asarray(masses, dtype=np.float64)
        for name in ("potential_energy", "kinetic_energy"):
            f[f"observables/{name}/value"] = np.zeros(t)
        f.create_group("pymotor").attrs["timestep_fs"] = dt_fs
    return path


def test_streaming_classes_equal_in_memory(tmp_path, traj, motor):
    rng = np.random.default_rng(0)
    vel = rng.normal(size=traj.shape) * 0.01
    path = write_h5md(tmp_path / "run.h5", traj, vel, motor[1], motor[2])
    masses = motor[1]
    sel = slice(3, 110, 2)
    r = analysis.RMSF(path, chunk_frames=7).run(start=3, stop=110, step=2).results
    np.testing.assert_allclose(r.rmsf, analysis.rmsf(traj[sel], masses), atol=1e-12)
    r = analysis.RMSF(path, max_iter=20, tol=1e-9, chunk_frames=16).run().results
    np.testing.assert_allclose(r.rmsf, analysis.rmsf(traj, masses, max_iter=20, tol=1e-9), atol=1e-12)
    rg = analysis.RadiusOfGyration(path, chunk_frames=5).run(step=3).results.rgyr
    np.testing.assert_allclose(rg, analysis.radius_of_gyration(traj[::3], masses), atol=1e-13)
    bins = np.linspace(0, 15, 151)
    h = analysis.DistanceHistogram(path, bins=bins, chunk_frames=9).run().results
    d = analysis.pairwise_distances(traj)
    np.testing.assert_array_equal(h.counts, np.histogram(d, bins=bins)[0])
    assert h.mean == pytest.approx(d.mean()) and h.max == d.max()
    q = [[0, 1, 2, 3], [5, 9, 20, 40]]
    ang = analysis.Dihedrals(path, q, chunk_frames=11).run().results.angles
    np.testing.assert_allclose(ang, analysis.dihedrals(traj, q), atol=1e-12)
    c = analysis.VACF(path, masses="file", atoms_per_block=5).run().results.vacf
    np.testing.assert_allclose(c, analysis.vacf(vel, masses), atol=1e-12)
    ps = analysis.PowerSpectrum(path, masses="file", atoms_per_block=7).run(step=2).results
    nu, p = analysis.power_spectrum(vel[::2], timestep_fs=1.0, masses=masses)  # file: 0.5 fs
    np.testing.assert_allclose(ps.nu, nu, rtol=1e-14)
    np.testing.assert_allclose(ps.power, p, rtol=1e-10, atol=1e-14 * p.max())
    # in-memory arrays work as sources too
    np.testing.assert_allclose(analysis.RMSF(traj, masses=masses).run().results.rmsf,
                               analysis.rmsf(traj, masses), atol=1e-12)


def test_kernels_release_the_gil():
    """A Python thread keeps running during one long C++ call (with the GIL held it would
    get at most a switch interval or two)."""
    import threading
    import time

    from pymotor import _core

    x = np.random.default_rng(0).normal(size=(20000, 48, 3))
    w = np.ones(48)
    spins, stop = [0], [False]

    def spin():
        while not stop[0]:
            spins[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        time.sleep(0.02)
        s0, t0 = spins[0], time.perf_counter()
        time.sleep(0.1)  # calibrate: spins per second while the main thread waits
        rate = (spins[0] - s0) / (time.perf_counter() - t0)
        s0, t0 = spins[0], time.perf_counter()
        _core.analysis.rmsf(x, w, 8, 1e-300)  # one call, ~0.1-1 s
        duration = time.perf_counter() - t0
        during = spins[0] - s0
    finally:
        stop[0] = True
        th.join()
    assert duration > 0.05
    assert during > 0.2 * rate * duration, (during, rate, duration)


def test_h5md_reader_converts_units(tmp_path, traj, motor):
    import h5py

    path = write_h5md(tmp_path / "nm.h5", traj / 10.0, traj * 100.0, motor[1], motor[2])
    with h5py.File(path, "r+") as f:
        f["particles/trajectory/position/value"].attrs["unit"] = "nm"
        f["particles/trajectory/velocity/value"].attrs["unit"] = "nm ps-1"
        f["particles/trajectory/position/time"][...] = np.arange(120) * 0.002
        f["particles/trajectory/position/time"].attrs["unit"] = "ps"
    with analysis.H5MDReader(path) as r:
        np.testing.assert_allclose(r.read("positions"), traj, rtol=1e-14)
        np.testing.assert_allclose(r.read("velocities"), traj, rtol=1e-14)  # 1 nm/ps = 0.01 A/fs
        assert r.frame_interval_fs == pytest.approx(2.0)
    with h5py.File(path, "r+") as f:
        f["particles/trajectory/position/value"].attrs["unit"] = "furlong"
    with pytest.raises(ValueError, match="unsupported position unit 'furlong'"):
        analysis.RMSF(path).run()


# ---- input validation ---------------------------------------------------------------------------
def test_bad_inputs_name_the_argument(traj, motor):
    masses = motor[1]
    with pytest.raises(ValueError, match=r"`positions` must be a \(n_frames, n_atoms, 3\) array, got \(47, 3\)"):
        analysis.pairwise_distances(np.zeros((47, 3)))
    with pytest.raises(ValueError, match="`positions` must have at least 2 atom"):
        analysis.pairwise_distances(np.zeros((4, 1, 3)))
    bad = traj.copy()
    bad[3, 5, 1] = np.nan
    with pytest.raises(ValueError, match=r"`positions` has a non-finite value \(nan\) at index \(3, 5, 1\)"):
        analysis.rmsf(bad, masses)
    with pytest.raises(ValueError, match=r"`positions` has a non-finite value \(nan\) at index \(3, 5, 1\)"):
        analysis.dihedrals(bad, [[0, 5, 7, 9]])
    analysis.dihedrals(bad, [[0, 1, 2, 3]])  # atom 5 not used: its NaN does not matter
    with pytest.raises(ValueError, match=r"`masses` must be an \(n_atoms,\) = \(48,\) array, got \(47,\)"):
        analysis.radius_of_gyration(traj, masses[:47])
    with pytest.raises(ValueError, match="`masses` must be positive"):
        analysis.rmsf(traj, -masses)
    with pytest.raises(TypeError, match="`positions` must be a real numeric array"):
        analysis.radius_of_gyration(np.full((2, 3, 3), "a"))
    with pytest.raises(ValueError, match="`max_iter` must be an integer > 0"):
        analysis.rmsf(traj, masses, max_iter=0)
    with pytest.raises(TypeError, match="`max_iter` must be an integer > 0, got 1.5"):  # also a ValueError
        analysis.rmsf(traj, masses, max_iter=1.5)
    with pytest.raises(ValueError, match="`velocities` must be a"):
        analysis.vacf(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="`velocities` are all zero"):
        analysis.vacf(np.zeros((10, 2, 3)))
    with pytest.raises(ValueError, match="`timestep_fs` must be a number > 0"):
        analysis.power_spectrum(traj, timestep_fs=-1.0)
    with pytest.raises(ValueError, match="`window` must be 'hann' or None"):
        analysis.power_spectrum(traj, window="blackman")
    with pytest.raises(ValueError, match="`pad_to` must be a power of two"):
        analysis.power_spectrum(traj, pad_to=100)
    with pytest.raises(ValueError, match="`x` and `y` must have the same length"):
        analysis.rolling_pearson(np.zeros(10), np.zeros(11), window=3)
    with pytest.raises(ValueError, match=r"`window` \(30\) must not exceed len\(x\) = 10"):
        analysis.rolling_pearson(np.arange(10.0), np.arange(10.0), window=30)
    with pytest.raises(ValueError, match="`window` must be an integer >= 2"):
        analysis.rolling_pearson(np.arange(10.0), np.arange(10.0), window=1)
    with pytest.raises(ValueError, match="`y` must be a 1-D array"):
        analysis.rolling_pearson(np.arange(10.0), np.zeros((10, 2)), window=3)
    with pytest.raises(ValueError, match=r"`quadruples` holds atom indices outside \[0, 47\]"):
        analysis.dihedrals(traj, [[0, 1, 2, 48]])
    with pytest.raises(ValueError, match=r"`quadruples` must be an \(n_dihedrals, 4\) array"):
        analysis.dihedrals(traj, [[0, 1, 2]])
    with pytest.raises(TypeError, match="`quadruples` must be an integer array"):
        analysis.dihedrals(traj, [[0.0, 1, 2, 3]])
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        analysis.RMSF("nope.h5")


def test_core_rejects_wrong_dtype_and_layout():
    from pymotor import _core

    x = np.zeros((3, 4, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="`positions` must have dtype float64"):
        _core.analysis.pairwise_distances(x)
    with pytest.raises(ValueError, match="`positions` must be C-contiguous"):
        _core.analysis.pairwise_distances(np.zeros((3, 4, 3))[:, ::2])
