// CPU features detected once at run time (kernels compiled for several instruction sets
// pick theirs from here; one detection for the whole library).
#pragma once

namespace pymotor {

// AVX2 (x86-64; false elsewhere). The analysis FFT's AVX2 build uses no FMA.
bool cpu_has_avx2();
// AVX2 and FMA3 (the dense kernels of the fast evaluators use fused multiply-adds).
bool cpu_has_avx2_fma();

}  // namespace pymotor
