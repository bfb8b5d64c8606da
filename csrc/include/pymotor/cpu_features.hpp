// CPU features detected once at run time (kernels compiled for several instruction sets
// pick theirs from here; one detection for the whole library).
#pragma once
#include <string>

namespace pymotor {

// AVX2 (x86-64; false elsewhere). The analysis FFT's AVX2 build uses no FMA.
bool cpu_has_avx2();
// AVX2 and FMA3 (the dense kernels of the fast evaluators use fused multiply-adds).
bool cpu_has_avx2_fma();
// AVX-512 F, DQ, VL and BW, with AVX2 and FMA3: what the 64-byte builds of the fast kernels use.
bool cpu_has_avx512();

// The instruction set a fast evaluator's kernels are built for: generic C++ (any CPU), AVX2+FMA
// (32-byte vectors) or AVX-512 (64-byte vectors; the packed weights and the filter tables are laid
// out for the vector width, so the choice is made once, when a model is loaded).
enum class Isa : int { Generic = 0, AVX2 = 1, AVX512 = 2 };

// The widest set this CPU has.
Isa best_isa();
// "auto" (best_isa), "avx512", "avx2" or "generic"; std::invalid_argument, naming `who`, for an
// unknown name or a set this CPU lacks.
Isa isa_from_name(const std::string& name, const std::string& who);
const char* isa_name(Isa isa);
// Bytes per SIMD vector of the kernels built for `isa` (the generic build uses GCC's 32-byte
// vector types, lowered to what the baseline CPU has).
inline int isa_vector_bytes(Isa isa) { return isa == Isa::AVX512 ? 64 : 32; }

}  // namespace pymotor
