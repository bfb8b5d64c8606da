// Potentials: energies (eV) and forces (eV/Angstrom) of R replicas of N atoms.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "pymotor/neighbors.hpp"

namespace pymotor {

class Potential {
 public:
  virtual ~Potential() = default;
  // positions: R*N*3 Angstrom. Writes energy[R] (eV) and forces[R*N*3] (eV/Angstrom).
  virtual void compute(const double* positions, int n_replicas, int n_atoms, double* energy,
                       double* forces) = 0;
  virtual std::string name() const = 0;
};

// E = sum_i k/2 |r_i - c_i|^2 : independent isotropic harmonic oscillators tethered to
// centres c (N*3), force constant k in eV/Angstrom^2. Analytic reference for tests.
class HarmonicPotential : public Potential {
 public:
  HarmonicPotential(double k_eV_per_A2, std::vector<double> centers_A);
  void compute(const double*, int, int, double*, double*) override;
  std::string name() const override { return "harmonic"; }

 private:
  double k_;
  std::vector<double> centers_;
};

// Lennard-Jones 12-6, truncated and shifted to zero energy at the cutoff, evaluated on a
// Verlet neighbour list. epsilon in eV, sigma and cutoff in Angstrom.
class LennardJonesPotential : public Potential {
 public:
  LennardJonesPotential(double epsilon_eV, double sigma_A, double cutoff_A, double skin_A);
  void compute(const double*, int, int, double*, double*) override;
  std::string name() const override { return "lennard-jones"; }
  const VerletList& neighbors() const { return nl_; }

 private:
  double eps_, sigma_, cutoff_, shift_;
  VerletList nl_;
};

// Forces from a host-language function (e.g. a Python ASE calculator). The function gets
// positions (R*N*3, Angstrom) and must fill energy (R, eV) and forces (R*N*3, eV/Angstrom).
class CallbackPotential : public Potential {
 public:
  using Function = std::function<void(const double*, int, int, double*, double*)>;
  CallbackPotential(Function f, std::string name) : f_(std::move(f)), name_(std::move(name)) {}
  void compute(const double* x, int r, int n, double* e, double* f) override { f_(x, r, n, e, f); }
  std::string name() const override { return name_; }

 private:
  Function f_;
  std::string name_;
};

}  // namespace pymotor
