// attend cli: writing a new model directory from others (attend average, attend quantize).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace attend::cli {

// Runs `write` (which saves a model into `out`) under out's lock, after recovering an
// interrupted write there: refuses an `out` that already holds a model unless `overwrite`, and
// one that is also an input. A directory this call created is removed again when `write` fails.
void write_model_directory(const std::string& out, bool overwrite, const std::vector<std::string>& inputs,
                           const std::string& who, const std::function<void()>& write);

}  // namespace attend::cli
