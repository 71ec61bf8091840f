// attend train: the processes of a data-parallel run and what they exchange. With attend built
// against MPI (OpenMPI) and started by mpirun, every rank is one process of MPI_COMM_WORLD;
// otherwise, and for a plain `attend train`, there is one process and every exchange is the
// identity. MPI is initialised on first use, and only when a launcher started the process (a
// plain run pays nothing for it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace attend {

class Communicator {
 public:
  // The processes this one was started with (one, unless launched by mpirun).
  static Communicator& world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool writer() const { return rank_ == 0; }  // the rank that writes files and prints

  // In place, over every rank: x[i] = sum over ranks of x[i]. Collective: every rank calls it
  // with the same n, in the same order.
  void allreduce_sum(float* x, int64_t n) const;
  void allreduce_sum(double* x, int64_t n) const;
  void allreduce_sum(int64_t* x, int64_t n) const;
  // Non-blocking all-reduce, in place: starts x[i] = sum over ranks of x[i] (n < 2^31); x must
  // stay untouched until wait_all() has returned. progress() lets MPI advance what was started
  // (call it now and then); wait_all() completes everything started. Every rank starts the
  // same exchanges in the same order.
  void start_allreduce_sum(float* x, int64_t n) const;
  void progress() const;
  void wait_all() const;
  // x from `root` on every rank.
  void broadcast(float* x, int64_t n, int root = 0) const;
  void broadcast(uint64_t* x, int64_t n, int root = 0) const;
  // A flat buffer cut into one contiguous share per rank, counts[r] values for rank r (each
  // < 2^31). reduce_scatter_sum: mine[i] = sum over ranks of their x[offset(rank) + i];
  // allgather: all = every rank's `mine`, in rank order. Collective, as above.
  void reduce_scatter_sum(const float* x, float* mine, const std::vector<int64_t>& counts) const;
  void allgather(const float* mine, float* all, const std::vector<int64_t>& counts) const;
  // Every rank's bytes, in rank order, on every rank (each at most 1 GiB).
  std::vector<std::string> allgather(const std::string& mine) const;
  // Throws std::runtime_error naming `what` and the ranks whose value differs from rank 0's
  // (different data files, options or builds), on every rank.
  void require_same(const std::string& what, const std::string& value) const;
  void barrier() const;

  // Called once by the program before it exits: MPI_Finalize after success; after a failure
  // (exit code 1 or 2), MPI_Abort, so that no other rank waits forever in a collective.
  static void finish(int exit_code);

 private:
  Communicator();
  template <typename T>
  void sum_in_place(T* x, int64_t n) const;
  template <typename T>
  void broadcast_in_place(T* x, int64_t n, int root) const;
  int rank_ = 0, size_ = 1;
};

}  // namespace attend
