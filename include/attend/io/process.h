// attend io: running another program (diatheke, npm) and reading what it prints.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attend {

// Runs argv[0] (looked up on PATH) with the arguments argv[1..], without a shell, and returns its
// standard output; its standard error goes to ours. Throws std::runtime_error naming the command
// when it cannot start, exits with a non-zero status or a signal, or prints more than
// `max_output` bytes.
std::string run_program(const std::vector<std::string>& argv, uint64_t max_output = 1ull << 30);

// Whether `name` is an executable on PATH.
bool program_exists(const std::string& name);

}  // namespace attend
