#include "pymotor/cpu_features.hpp"

#include <stdexcept>

namespace pymotor {

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
bool cpu_has_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok;
}
bool cpu_has_avx2_fma() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}
bool cpu_has_avx512() {
  static const bool ok = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") &&
                         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                         __builtin_cpu_supports("avx512bw");
  return ok;
}
#else
bool cpu_has_avx2() { return false; }
bool cpu_has_avx2_fma() { return false; }
bool cpu_has_avx512() { return false; }
#endif

Isa best_isa() {
  if (cpu_has_avx512()) return Isa::AVX512;
  if (cpu_has_avx2_fma()) return Isa::AVX2;
  return Isa::Generic;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::AVX512: return "avx512";
    case Isa::AVX2: return "avx2";
    default: return "generic";
  }
}

Isa isa_from_name(const std::string& name, const std::string& who) {
  if (name == "auto") return best_isa();
  if (name == "generic") return Isa::Generic;
  if (name == "avx2" || name == "avx512") {
    const bool avx512 = name == "avx512";
    if (avx512 ? !cpu_has_avx512() : !cpu_has_avx2_fma())
      throw std::invalid_argument(who + ": isa='" + name + "' needs " +
                                  (avx512 ? "AVX-512 (F, DQ, VL, BW)" : "AVX2 and FMA") +
                                  ", which this CPU lacks; use isa='auto' (here: '" + isa_name(best_isa()) + "')");
    return avx512 ? Isa::AVX512 : Isa::AVX2;
  }
  throw std::invalid_argument(who + ": isa must be 'auto', 'avx512', 'avx2' or 'generic', got '" + name + "'");
}

}  // namespace pymotor
