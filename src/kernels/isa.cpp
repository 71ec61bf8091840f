// The one dispatch point of the vector kernels: Highway's chosen target, which every
// HWY_DYNAMIC_DISPATCH reads. Compiled with the same flags as the kernels (CMake's attend_simd)
// so that HWY_TARGETS here names the same set of compiled instruction sets.
#include <hwy/highway.h>
#include <hwy/targets.h>

#include <cctype>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "attend/cpu.h"

namespace attend {
namespace {

// Compiled and supported, best first; fixed when first asked, before any choice narrows what
// Highway reports as supported.
const std::vector<int64_t>& targets() {
  static const std::vector<int64_t> list = hwy::SupportedAndGeneratedTargets();
  return list;
}

std::string isa_name(int64_t target) {
  if (target == HWY_AVX3) return "avx512";
  std::string name = hwy::TargetName(target);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

int64_t g_chosen = 0;  // 0: Highway's own choice, the best of targets()

}  // namespace

std::vector<std::string> cpu_isas() {
  std::vector<std::string> names;
  for (int64_t t : targets()) names.push_back(isa_name(t));
  return names;
}

std::string cpu_isa() { return isa_name(g_chosen != 0 ? g_chosen : targets().front()); }

void set_cpu_isa(const std::string& name) {
  for (int64_t t : targets()) {
    if (isa_name(t) != name) continue;
    hwy::SetSupportedTargetsForTest(t == targets().front() ? 0 : t);
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
    g_chosen = t;
    return;
  }
  std::string choices;
  for (const std::string& n : cpu_isas()) choices.append(choices.empty() ? "" : ", ").append(n);
  throw std::invalid_argument("set_cpu_isa: '" + name + "' is not an instruction set of this CPU and build (" +
                              choices + ")");
}

}  // namespace attend
