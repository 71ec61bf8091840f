// attend serve: the models a server answers with, by name. A reload loads the directory into a
// new Translator and swaps it in under a lock: requests already holding the old one finish on
// it (shared ownership), later ones get the new one, and a failed load leaves the old one.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attend/models/translator.h"

namespace attend::serve {

struct LoadedModel {
  std::string name, directory;
  Translator translator;
  uint64_t generation = 0;  // 1 for the first load, +1 per reload: batches never mix two loads
  std::chrono::system_clock::time_point loaded_at;
  nlohmann::json describe() const;  // for GET /v1/models
};

class ModelSet {
 public:
  // NAME=DIR pairs; loads every directory (errors name the model and the file), each decoding
  // in `precision` (reloads too), or as it was saved.
  explicit ModelSet(const std::vector<std::pair<std::string, std::string>>& models,
                    std::optional<Precision> precision = std::nullopt);
  std::shared_ptr<const LoadedModel> get(const std::string& name) const;  // null when unknown
  std::vector<std::shared_ptr<const LoadedModel>> all() const;
  // Reloads one model (or every model for ""); throws std::invalid_argument for an unknown name
  // and std::runtime_error naming the model and file when a load fails (that model keeps serving).
  // Returns the names reloaded. One reload at a time.
  std::vector<std::string> reload(const std::string& name);

 private:
  std::shared_ptr<const LoadedModel> load(const std::string& name, const std::string& dir, uint64_t generation) const;

  mutable std::mutex mu_;  // guards models_
  std::mutex reload_mu_;   // one reload at a time
  std::map<std::string, std::shared_ptr<const LoadedModel>> models_;
  std::optional<Precision> precision_;
};

// "NAME=DIR" -> {NAME, DIR}; names are [A-Za-z0-9._-]{1,64}. Throws std::invalid_argument.
std::pair<std::string, std::string> parse_model_spec(const std::string& spec);

}  // namespace attend::serve
