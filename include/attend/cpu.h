// attend: the instruction set of the vector kernels.
//
// The kernels are compiled for every instruction set attend targets (on x86: SSE4, AVX2 and
// AVX-512; "scalar" (or "emu128" with GCC >= 12.3) is portable C++) and the best one this CPU runs is chosen when the
// library loads. Sums over 16 lanes round differently from sums over 8, so results for a given seed are reproducible
// per instruction set; pin one (the CLI reads ATTEND_CPU_ISA) to get the same numbers on different machines.
#pragma once

#include <string>
#include <vector>

namespace attend {

// The instruction sets compiled in and supported by this CPU, best first, e.g.
// {"avx512", "avx2", "sse4", "scalar"}.
std::vector<std::string> cpu_isas();
// The one in use.
std::string cpu_isa();
// Uses `name` (one of cpu_isas()) from now on; throws std::invalid_argument naming the choices
// otherwise. Call it before other threads run attend's kernels.
void set_cpu_isa(const std::string& name);

}  // namespace attend
