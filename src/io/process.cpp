#include "attend/io/process.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace attend {

namespace {

std::string command_line(const std::vector<std::string>& argv) {
  std::string s;
  for (const std::string& a : argv)
    s.append(s.empty() ? "" : " ").append(a.find(' ') == std::string::npos ? a : "'" + a + "'");
  return s;
}

}  // namespace

std::string run_program(const std::vector<std::string>& argv, uint64_t max_output) {
  if (argv.empty()) throw std::invalid_argument("run_program: no program");
  int fds[2];
  if (::pipe(fds) != 0)
    throw std::runtime_error("cannot run " + command_line(argv) + ": pipe: " + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (spawned != 0) {
    ::close(fds[0]);
    throw std::runtime_error("cannot run " + command_line(argv) + ": " + std::strerror(spawned));
  }
  std::string out;
  char buf[65536];
  bool too_long = false;
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (out.size() + static_cast<uint64_t>(n) > max_output) {
      too_long = true;
      ::kill(pid, SIGKILL);
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  if (too_long)
    throw std::runtime_error(command_line(argv) + ": printed more than " + std::to_string(max_output) + " bytes");
  if (WIFSIGNALED(status))
    throw std::runtime_error(command_line(argv) + ": killed by signal " + std::to_string(WTERMSIG(status)));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(command_line(argv) + ": exited with status " + std::to_string(WEXITSTATUS(status)) +
                             (WEXITSTATUS(status) == 127 ? " (not installed?)" : ""));
  return out;
}

bool program_exists(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::string dirs = path;
  for (size_t begin = 0; begin <= dirs.size();) {
    size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > begin ? dirs.substr(begin, end - begin) : ".";
    if (::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    begin = end + 1;
  }
  return false;
}

}  // namespace attend
