// attend cli: `attend data`: the data sets attend installs and prepares.
#pragma once

#include <string>

namespace attend::cli {

// attend data bible --pair es-en|kjv-web --out DIR: train/dev/test.tsv and .keys from two SWORD
// modules, installing diatheke and the modules through scripts/install-deps.sh when missing.
int run_data_bible(const std::string& pair, const std::string& out);

}  // namespace attend::cli
