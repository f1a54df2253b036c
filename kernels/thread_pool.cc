#include "kernels/thread_pool.h"

namespace drr::kernels {

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0)
    threads = static_cast<int>(std::thread::hardware_concurrency());
  for (int i = 1; i < threads; ++i)
    workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int count, const std::function<void(int)>& body) {
  std::lock_guard<std::mutex> call_lock(call_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    body_ = &body;
    count_ = count;
    next_ = 0;
    ++generation_;
  }
  work_ready_.notify_all();
  RunTasks();
  std::unique_lock<std::mutex> lock(mutex_);
  work_done_.wait(lock, [this] { return next_ >= count_ && running_ == 0; });
  body_ = nullptr;
}

void ThreadPool::RunTasks() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (next_ < count_) {
    const int i = next_++;
    ++running_;
    lock.unlock();
    (*body_)(i);
    lock.lock();
    --running_;
  }
  if (running_ == 0) work_done_.notify_all();
}

void ThreadPool::WorkerLoop() {
  long long seen = 0;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    RunTasks();
  }
}

}  // namespace drr::kernels
