// OpenMP thread count and id (1 and 0 without OpenMP), shared by the analysis kernels.
#pragma once
#ifdef _OPENMP
#include <omp.h>
#endif

namespace pymotor {

inline int n_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace pymotor
