#include "pymotor/cpu_features.hpp"

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
#else
bool cpu_has_avx2() { return false; }
bool cpu_has_avx2_fma() { return false; }
#endif

}  // namespace pymotor
