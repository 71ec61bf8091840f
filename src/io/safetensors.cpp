#include "attend/io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "attend/io/files.h"

namespace attend {

namespace {
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference implementation's bound

void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
}
uint64_t get_u64(std::string_view s) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[i]);
  return v;
}
}  // namespace

std::string safetensors_bytes(const std::vector<NamedParameter>& tensors,
                              const std::map<std::string, std::string>& metadata, const std::vector<Int8Tensor>& int8) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> seen;
  for (const auto& t : tensors) {
    if (!seen.insert(t.name).second) throw std::invalid_argument("safetensors: duplicate tensor name '" + t.name + "'");
    const uint64_t bytes = uint64_t(t.var.value().numel()) * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.var.shape().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  for (const auto& t : int8) {
    if (!seen.insert(t.name).second) throw std::invalid_argument("safetensors: duplicate tensor name '" + t.name + "'");
    if (int64_t(t.values.size()) != t.shape.numel())
      throw std::invalid_argument("safetensors: I8 tensor '" + t.name + "' has " + std::to_string(t.values.size()) +
                                  " values for shape " + t.shape.str());
    header[t.name] = {{"dtype", "I8"}, {"shape", t.shape.vec()}, {"data_offsets", {offset, offset + t.values.size()}}};
    offset += t.values.size();
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';  // keep the data 8-byte aligned, as the reference writer does
  std::string out;
  out.reserve(8 + h.size() + offset);
  put_u64(out, h.size());
  out += h;
  static_assert(std::numeric_limits<float>::is_iec559, "IEEE floats");
  for (const auto& t : tensors)
    out.append(reinterpret_cast<const char*>(t.var.value().data()), t.var.value().numel() * sizeof(float));
  for (const auto& t : int8) out.append(reinterpret_cast<const char*>(t.values.data()), t.values.size());
  return out;  // little-endian host (x86-64, aarch64)
}

void save_safetensors(const std::string& path, const std::vector<NamedParameter>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, safetensors_bytes(tensors, metadata));
}

std::map<std::string, Tensor> parse_safetensors(std::string_view bytes, const std::string& origin,
                                                std::map<std::string, std::string>* metadata,
                                                std::set<std::string>* int8) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(origin + ": invalid safetensors file: " + what);
  };
  if (bytes.size() < 8) fail("only " + std::to_string(bytes.size()) + " bytes (truncated?)");
  const uint64_t n = get_u64(bytes);
  if (n > kMaxHeaderBytes)
    fail("header size " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes));
  if (n > bytes.size() - 8)
    fail("header size " + std::to_string(n) + " runs past the end of the " + std::to_string(bytes.size()) +
         "-byte file (truncated?)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<int64_t>(n));
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("header is not JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail("header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - n;
  std::map<std::string, Tensor> out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!metadata) continue;
      if (!info.is_object()) fail("__metadata__ is not an object of strings");
      for (const auto& [key, value] : info.items()) {
        if (!value.is_string()) fail("__metadata__ '" + key + "' is not a string");
        (*metadata)[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      fail(where + "needs dtype, shape and data_offsets");
    const bool i8 = int8 && info["dtype"] == "I8";
    if (!info["dtype"].is_string() || (info["dtype"] != "F32" && !i8))
      fail(where + "dtype " + info["dtype"].dump() +
           (int8 ? " (F32 or I8 are supported)" : " (only F32 is supported)"));
    const uint64_t element = i8 ? 1 : sizeof(float);
    const auto& shape = info["shape"];
    const auto& offs = info["data_offsets"];
    if (!shape.is_array() || shape.size() > 4) fail(where + "shape " + shape.dump() + " (at most 4 dims)");
    if (!offs.is_array() || offs.size() != 2 || !offs[0].is_number_unsigned() || !offs[1].is_number_unsigned())
      fail(where + "data_offsets " + offs.dump() + " must be two non-negative integers");
    std::vector<int64_t> dims;
    uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) fail(where + "shape " + shape.dump() + " has a non-integer or negative dim");
      const uint64_t v = d.get<uint64_t>();
      if (v > (1ull << 40) || (v && numel > (1ull << 40) / v)) fail(where + "shape " + shape.dump() + " is too large");
      numel *= v;
      dims.push_back(static_cast<int64_t>(v));
    }
    const uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      fail(where + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] outside the " +
           std::to_string(data_size) + " data bytes (truncated?)");
    }
    if (end - begin != numel * element) {
      fail(where + "shape " + shape.dump() + " needs " + std::to_string(numel * element) + " bytes, offsets give " +
           std::to_string(end - begin));
    }
    ranges.emplace_back(begin, end);
    Tensor t{Shape(dims)};
    const char* data = bytes.data() + 8 + n + begin;
    if (i8) {
      for (uint64_t i = 0; i < numel; ++i) t.data()[i] = static_cast<float>(static_cast<int8_t>(data[i]));
      int8->insert(name);
    } else if (numel) {
      std::memcpy(t.data(), data, numel * sizeof(float));
    }
    out.emplace(name, std::move(t));
  }
  // As the format's own reader does: the tensors tile the data exactly, no overlap, no gap, no
  // trailing bytes (which would be data that nothing reads, e.g. a file appended to).
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [begin, end] : ranges) {
    if (begin < covered) fail("two tensors overlap at byte " + std::to_string(begin));
    if (begin > covered)
      fail("bytes " + std::to_string(covered) + " to " + std::to_string(begin) + " belong to no tensor");
    covered = end;
  }
  if (covered != data_size)
    fail(std::to_string(data_size - covered) + " trailing bytes after the last tensor (the data is " +
         std::to_string(data_size) + " bytes, the tensors end at " + std::to_string(covered) + ")");
  return out;
}

std::map<std::string, Tensor> load_safetensors(const std::string& path) {
  const MappedFile file(path);  // the tensors are copied out once; the file's pages are not
  return parse_safetensors(file.bytes(), path);
}

void require_finite(const std::map<std::string, Tensor>& tensors, const std::string& origin) {
  for (const auto& [name, t] : tensors) {
    const float* x = t.data();
    for (int64_t i = 0, n = t.numel(); i < n; ++i)
      if (!std::isfinite(x[i]))
        throw std::runtime_error(origin + ": tensor '" + name + "' element " + std::to_string(i) + " is " +
                                 std::to_string(x[i]) + ": the weights are damaged (saved from a diverged run?)");
  }
}

void assign_parameters(const std::vector<NamedParameter>& params, const std::map<std::string, Tensor>& tensors,
                       const std::string& origin) {
  for (const auto& p : params) {
    auto it = tensors.find(p.name);
    if (it == tensors.end()) throw std::runtime_error(origin + ": missing tensor '" + p.name + "'");
    if (it->second.shape() != p.var.shape()) {
      throw std::runtime_error(origin + ": tensor '" + p.name + "' has shape " + it->second.shape().str() +
                               ", the model (config.json) expects " + p.var.shape().str());
    }
    Var v = p.var;
    v.value().copy_from(it->second);
  }
  if (tensors.size() != params.size()) {
    for (const auto& [name, t] : tensors) {
      bool known = false;
      for (const auto& p : params) known = known || p.name == name;
      if (!known) throw std::runtime_error(origin + ": unexpected tensor '" + name + "' (not part of this model)");
    }
  }
}

}  // namespace attend
