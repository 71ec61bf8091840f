#include "serve/models.h"

#include <stdexcept>

namespace attend::serve {

nlohmann::json LoadedModel::describe() const {
  const Model& m = translator.model();
  const nlohmann::json extra = translator.extra();
  return {{"name", name},
          {"directory", directory},
          {"architecture", to_string(m.architecture())},
          {"parameters", translator.parameter_count()},
          {"source_vocab", translator.source_vocab().size()},
          {"target_vocab", translator.target_vocab().size()},
          {"source_tokenizer", to_string(translator.source_tokenizer().kind)},
          {"target_tokenizer", to_string(translator.target_tokenizer().kind)},
          {"max_source_length", m.max_source_length()},
          {"precision", to_string(translator.precision())},
          {"task", extra.contains("task") ? extra["task"] : nlohmann::json(nullptr)},
          {"generation", generation},
          {"loaded_at", std::chrono::duration_cast<std::chrono::seconds>(loaded_at.time_since_epoch()).count()}};
}

std::pair<std::string, std::string> parse_model_spec(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw std::invalid_argument("serve: --model takes NAME=DIR, got '" + spec + "'");
  const std::string name = spec.substr(0, eq);
  const bool ok = name.size() <= 64 && name.find_first_not_of(
                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789._-") == std::string::npos;
  if (!ok) throw std::invalid_argument("serve: a model name is 1-64 of A-Z a-z 0-9 . _ -, got '" + name + "'");
  return {name, spec.substr(eq + 1)};
}

ModelSet::ModelSet(const std::vector<std::pair<std::string, std::string>>& models, std::optional<Precision> precision)
    : precision_(precision) {
  if (models.empty()) throw std::invalid_argument("serve: give at least one --model NAME=DIR");
  for (const auto& [name, dir] : models) {
    if (models_.count(name)) throw std::invalid_argument("serve: model name '" + name + "' given twice");
    models_[name] = load(name, dir, 1);
  }
}

std::shared_ptr<const LoadedModel> ModelSet::load(const std::string& name, const std::string& dir,
                                                  uint64_t generation) const {
  try {
    auto m = std::make_shared<LoadedModel>(LoadedModel{name, dir, Translator::load(dir, precision_), generation, {}});
    m->loaded_at = std::chrono::system_clock::now();
    return m;
  } catch (const std::exception& e) {
    throw std::runtime_error("model '" + name + "': " + e.what());
  }
}

std::shared_ptr<const LoadedModel> ModelSet::get(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const LoadedModel>> ModelSet::all() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<const LoadedModel>> out;
  for (const auto& [name, m] : models_) out.push_back(m);
  return out;
}

std::vector<std::string> ModelSet::reload(const std::string& name) {
  std::lock_guard<std::mutex> one_at_a_time(reload_mu_);
  std::vector<std::shared_ptr<const LoadedModel>> old;
  if (name.empty()) {
    old = all();
  } else if (auto m = get(name)) {
    old.push_back(m);
  } else {
    throw std::invalid_argument("no model named '" + name + "'");
  }
  std::vector<std::string> names;
  for (const auto& m : old) {
    auto fresh = load(m->name, m->directory, m->generation + 1);  // loaded outside the lock
    std::lock_guard<std::mutex> lock(mu_);
    models_[m->name] = std::move(fresh);
    names.push_back(m->name);
  }
  return names;
}

}  // namespace attend::serve
