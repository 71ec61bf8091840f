#include "attend/train/communicator.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#ifdef ATTEND_MPI
#include <mpi.h>
#endif

namespace attend {
namespace {

// MPI takes counts as int: larger exchanges go in pieces.
constexpr int64_t kMaxPiece = int64_t(1) << 30;

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

#ifdef ATTEND_MPI
bool g_initialised = false;

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw std::runtime_error(std::string("MPI: ") + what + " failed: " + std::string(text, len));
}

template <typename T>
void allreduce(T* x, int64_t n, MPI_Datatype type) {
  for (int64_t i = 0; i < n; i += kMaxPiece)
    check(
        MPI_Allreduce(MPI_IN_PLACE, x + i, static_cast<int>(std::min(kMaxPiece, n - i)), type, MPI_SUM, MPI_COMM_WORLD),
        "all-reduce");
}
#endif

}  // namespace

Communicator::Communicator() {
#ifdef ATTEND_MPI
  if (!launched_by_mpirun()) return;
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
  g_initialised = true;
  // Errors come back as codes (turned into exceptions) instead of ending the process.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
#else
  if (launched_by_mpirun() && std::getenv("OMPI_COMM_WORLD_SIZE") && std::atoi(std::getenv("OMPI_COMM_WORLD_SIZE")) > 1)
    throw std::runtime_error(
        "started by mpirun, but this attend was built without MPI: install libopenmpi-dev and rebuild");
#endif
}

Communicator& Communicator::world() {
  static Communicator c;
  return c;
}

// The typed collectives: one MPI datatype per C++ type, in pieces of at most kMaxPiece.
#ifdef ATTEND_MPI
namespace {
template <typename T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}
template <>
MPI_Datatype mpi_type<int64_t>() {
  return MPI_INT64_T;
}
template <>
MPI_Datatype mpi_type<uint64_t>() {
  return MPI_UINT64_T;
}

template <typename T>
void broadcast_pieces(T* x, int64_t n, int root) {
  for (int64_t i = 0; i < n; i += kMaxPiece)
    check(MPI_Bcast(x + i, static_cast<int>(std::min(kMaxPiece, n - i)), mpi_type<T>(), root, MPI_COMM_WORLD),
          "broadcast");
}
}  // namespace
#endif

template <typename T>
void Communicator::sum_in_place(T* x, int64_t n) const {
#ifdef ATTEND_MPI
  if (size_ > 1) allreduce(x, n, mpi_type<T>());
#else
  (void)x, (void)n;
#endif
}

template <typename T>
void Communicator::broadcast_in_place(T* x, int64_t n, int root) const {
#ifdef ATTEND_MPI
  if (size_ > 1) broadcast_pieces(x, n, root);
#else
  (void)x, (void)n, (void)root;
#endif
}

void Communicator::allreduce_sum(float* x, int64_t n) const { sum_in_place(x, n); }
void Communicator::allreduce_sum(double* x, int64_t n) const { sum_in_place(x, n); }
void Communicator::allreduce_sum(int64_t* x, int64_t n) const { sum_in_place(x, n); }
void Communicator::broadcast(float* x, int64_t n, int root) const { broadcast_in_place(x, n, root); }
void Communicator::broadcast(uint64_t* x, int64_t n, int root) const { broadcast_in_place(x, n, root); }

namespace {
// MPI's int counts and offsets of the shares, checked; their sum is the buffer's length.
std::pair<std::vector<int>, std::vector<int>> share_counts(const std::vector<int64_t>& counts, int ranks) {
  if (static_cast<int>(counts.size()) != ranks)
    throw std::invalid_argument("Communicator: " + std::to_string(counts.size()) + " shares for " +
                                std::to_string(ranks) + " ranks");
  std::vector<int> c(ranks), o(ranks);
  int64_t at = 0;
  for (int r = 0; r < ranks; ++r) {
    if (counts[r] < 0 || at + counts[r] > INT32_MAX)
      throw std::invalid_argument("Communicator: share " + std::to_string(r) + " of " + std::to_string(counts[r]) +
                                  " values at offset " + std::to_string(at) + " (the buffer must stay below 2^31)");
    c[r] = static_cast<int>(counts[r]), o[r] = static_cast<int>(at), at += counts[r];
  }
  return {c, o};
}
}  // namespace

#ifdef ATTEND_MPI
namespace {
std::vector<MPI_Request> g_pending;  // started by start_allreduce_sum, not yet completed
}  // namespace
#endif

void Communicator::start_allreduce_sum(float* x, int64_t n) const {
  if (n < 0 || n > INT32_MAX) throw std::invalid_argument("start_allreduce_sum: " + std::to_string(n) + " values");
#ifdef ATTEND_MPI
  if (size_ == 1) return;
  g_pending.emplace_back();
  check(MPI_Iallreduce(MPI_IN_PLACE, x, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g_pending.back()),
        "all-reduce");
#else
  (void)x;
#endif
}

void Communicator::progress() const {
#ifdef ATTEND_MPI
  int done = 0;
  if (!g_pending.empty())
    check(MPI_Testall(static_cast<int>(g_pending.size()), g_pending.data(), &done, MPI_STATUSES_IGNORE), "all-reduce");
#endif
}

void Communicator::wait_all() const {
#ifdef ATTEND_MPI
  if (!g_pending.empty())
    check(MPI_Waitall(static_cast<int>(g_pending.size()), g_pending.data(), MPI_STATUSES_IGNORE), "all-reduce");
  g_pending.clear();
#endif
}

void Communicator::reduce_scatter_sum(const float* x, float* mine, const std::vector<int64_t>& counts) const {
  const auto [c, o] = share_counts(counts, size_);
  if (size_ == 1) return (void)std::copy(x, x + c[0], mine);
#ifdef ATTEND_MPI
  check(MPI_Reduce_scatter(x, mine, c.data(), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "reduce-scatter");
#endif
}

void Communicator::allgather(const float* mine, float* all, const std::vector<int64_t>& counts) const {
  const auto [c, o] = share_counts(counts, size_);
  if (size_ == 1) return (void)std::copy(mine, mine + c[0], all);
#ifdef ATTEND_MPI
  check(MPI_Allgatherv(mine, c[rank_], MPI_FLOAT, all, c.data(), o.data(), MPI_FLOAT, MPI_COMM_WORLD), "all-gather");
#endif
}

std::vector<std::string> Communicator::allgather(const std::string& mine) const {
  if (size_ <= 1) return {mine};
#ifdef ATTEND_MPI
  if (mine.size() > size_t(kMaxPiece))
    throw std::invalid_argument("Communicator::allgather: " + std::to_string(mine.size()) + " bytes, at most 2^30");
  std::vector<int> counts(size_), offsets(size_);
  int count = static_cast<int>(mine.size());
  check(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD), "all-gather");
  int64_t total = 0;
  for (int r = 0; r < size_; ++r) offsets[r] = static_cast<int>(total), total += counts[r];
  if (total > kMaxPiece)
    throw std::runtime_error("Communicator::allgather: " + std::to_string(total) + " bytes in all");
  std::string all(static_cast<size_t>(total), '\0');
  check(
      MPI_Allgatherv(mine.data(), count, MPI_CHAR, all.data(), counts.data(), offsets.data(), MPI_CHAR, MPI_COMM_WORLD),
      "all-gather");
  std::vector<std::string> out;
  for (int r = 0; r < size_; ++r) out.push_back(all.substr(offsets[r], counts[r]));
  return out;
#else
  return {mine};
#endif
}

void Communicator::require_same(const std::string& what, const std::string& value) const {
#ifdef ATTEND_MPI
  if (size_ <= 1) return;
  // Every rank's value, padded to the longest, gathered everywhere.
  int64_t longest = static_cast<int64_t>(value.size());
  int64_t len[1] = {longest};
  check(MPI_Allreduce(MPI_IN_PLACE, len, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD), "all-reduce");
  if (len[0] > (int64_t(1) << 20)) throw std::invalid_argument("require_same: value of " + what + " too long");
  std::string mine = value;
  mine.resize(len[0] + 1, '\0');
  mine.back() = static_cast<char>(value.size() == static_cast<size_t>(len[0]));
  std::vector<char> all(mine.size() * size_);
  check(MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_CHAR, all.data(), static_cast<int>(mine.size()),
                      MPI_CHAR, MPI_COMM_WORLD),
        "all-gather");
  std::string differ;
  for (int r = 1; r < size_; ++r)
    if (!std::equal(all.begin(), all.begin() + mine.size(), all.begin() + r * mine.size()))
      differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (!differ.empty())
    throw std::runtime_error("the ranks disagree on " + what + ": rank(s) " + differ +
                             " differ from rank 0 (every rank must be started with the same arguments, data files "
                             "and attend build)");
#else
  (void)what, (void)value;
#endif
}

void Communicator::barrier() const {
#ifdef ATTEND_MPI
  if (size_ > 1) check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
#endif
}

void Communicator::finish(int exit_code) {
#ifdef ATTEND_MPI
  if (!g_initialised) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (exit_code == 1 || exit_code == 2) MPI_Abort(MPI_COMM_WORLD, exit_code);  // (128 + signal: all stopped)
  MPI_Finalize();
#else
  (void)exit_code;
#endif
}

}  // namespace attend
