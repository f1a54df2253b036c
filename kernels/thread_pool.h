// A fixed pool that runs index ranges in parallel on the calling thread and
// its workers; the CPU executor's only threads besides the caller's.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace drr::kernels {

// Runs ParallelFor calls on `threads` threads: the calling thread and
// threads − 1 workers.
class ThreadPool {
 public:
  // Starts threads − 1 workers (0 = one thread per hardware thread).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Calls body(i) for every i in [0, count), spread over the workers and the
  // caller; returns when all calls have returned. Calls from several threads
  // at once are serialised.
  void ParallelFor(int count, const std::function<void(int)>& body);

 private:
  void WorkerLoop();
  void RunTasks();

  std::mutex call_mutex_;  // one ParallelFor at a time
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const std::function<void(int)>* body_ = nullptr;
  int count_ = 0;
  int next_ = 0;
  int running_ = 0;
  long long generation_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace drr::kernels
