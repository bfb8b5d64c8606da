// Trajectory analysis kernels (no Python here). Units: positions in Angstrom, velocities
// in Angstrom/fs, masses in amu, time in fs. Arrays are C-contiguous, row-major:
// a trajectory of T frames and N atoms is `T*N*3` doubles (frame, atom, xyz).
// Every kernel is deterministic for a fixed number of OpenMP threads; the reductions
// (rmsf, vacf, power spectrum) combine per-thread partial sums in thread order.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pymotor::analysis {

// ---- geometry ------------------------------------------------------------------------

// Condensed pairwise distances (scipy.spatial.distance.pdist order: (0,1), (0,2), ...,
// (0,N-1), (1,2), ...). `out` holds T * N(N-1)/2 values [Angstrom].
void pairwise_distances(const double* positions, std::size_t n_frames, std::size_t n_atoms,
                        double* out);

// Weighted radius of gyration per frame, sqrt(sum_i w_i |r_i - r_c|^2 / sum_i w_i) with
// r_c the weighted centre. `weights` (N values, e.g. masses in amu) must have a positive sum.
void radius_of_gyration(const double* positions, const double* weights, std::size_t n_frames,
                        std::size_t n_atoms, double* out);

// Dihedral angles [degrees, (-180, 180]] of atom quadruples (a, b, c, d), IUPAC sign
// convention (as MDTraj / MDAnalysis): `quadruples` holds Q*4 atom indices, `out` T*Q.
void dihedrals(const double* positions, std::size_t n_frames, std::size_t n_atoms,
               const std::int64_t* quadruples, std::size_t n_quadruples, double* out);

// ---- superposition and RMSF ----------------------------------------------------------

// Rotation R (row-major 3x3) minimising sum_i w_i |R x_i - y_i|^2 for centred x (mobile)
// and y (reference), by Horn's quaternion method (the eigenproblem QCP solves).
void kabsch_rotation(const double* mobile_centred, const double* reference_centred,
                     const double* weights, std::size_t n_atoms, double* rotation);

// One alignment pass: every frame is centred on its weighted centre and rotated onto
// `reference` (N*3, centred on its weighted centre); accumulates the deviations of the
// aligned frames from the reference, `sum_dev` (N*3) += sum_t d and `sum_sq_dev` (N*3)
// += sum_t d*d. Deviations from the reference (shifted sums) keep the variance stable.
void align_accumulate(const double* positions, const double* weights, std::size_t n_frames,
                      std::size_t n_atoms, const double* reference, double* sum_dev,
                      double* sum_sq_dev);

struct RmsfResult {
  std::vector<double> rmsf;     // N values [Angstrom]
  std::vector<double> average;  // N*3, the average structure of the last pass
  int iterations = 0;           // alignments to the average that were done
  double last_change = 0.0;     // weighted RMSD between the last two averages [Angstrom]
};

// RMSF per atom as MDAnalysis' AverageStructure(ref_frame=0) + AlignTraj(to the average)
// + RMSF: align to frame 0, average, align to that average (iteration 1) and take the
// per-atom RMS fluctuation about the mean of the aligned frames. With max_iter > 1 the
// alignment to the new average is repeated until the average moves less than `tol`
// (weighted RMSD, Angstrom).
RmsfResult rmsf(const double* positions, const double* weights, std::size_t n_frames,
                std::size_t n_atoms, int max_iter, double tol);

// ---- time series ---------------------------------------------------------------------

// In-place complex FFT (radix-2^2 decimation in frequency, cache-blocked recursion);
// data.size() must be a power of two.
// inverse=true computes the unnormalised inverse (sum with exp(+2 pi i k n / M)).
void fft(std::vector<std::complex<double>>& data, bool inverse);

// Weighted sum over the S = N*3 signals x_s(t) = v[t, i, a] of their zero-padded power
// spectra, sum_s w_i |X_s(k)|^2, for k = 0..M/2 with M = `fft_size` (power of two >= T).
// An optional `taper` (T values) multiplies every signal first. Returns M/2 + 1 values.
// Transforms four signal pairs at once, vectorised (AVX2 where the CPU has it, else the
// portable SSE2 build; both give the same bits). Memory: 64 M bytes per OpenMP thread.
std::vector<double> summed_power(const double* signals, const double* atom_weights,
                                 const double* taper, std::size_t n_frames, std::size_t n_atoms,
                                 std::size_t fft_size);

// Velocity autocorrelation C(tau) = sum_i w_i sum_a <v_ia(t) v_ia(t+tau)>_t / (3 sum_i w_i),
// tau = 0..T-1, the time origin average over the T - tau available origins. By
// Wiener-Khinchin on signals zero-padded to a power of two >= 2T (no wrap-around).
// `atom_weights` may be null (all atoms weigh 1). Units (Angstrom/fs)^2.
std::vector<double> vacf(const double* velocities, const double* atom_weights,
                         std::size_t n_frames, std::size_t n_atoms);

// Sliding-window Pearson correlation: out[k] = r(x[k:k+W], y[k:k+W]) for k = 0..T-W, in
// O(T) from compensated (Neumaier) prefix sums of the data shifted by their first values.
// Windows in which x or y is constant to within rounding give NaN.
void rolling_pearson(const double* x, const double* y, std::size_t n, std::size_t window,
                     double* out);

// Smallest power of two >= n (n >= 1).
std::size_t next_pow2(std::size_t n);

}  // namespace pymotor::analysis
