// A thread of its own for the engine's answers, so that encoding responses
// and recording metrics never hold up a render worker.
#pragma once

#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace drr::server {

// Runs callbacks one at a time, in the order they were posted, on one thread.
class CallbackThread {
 public:
  CallbackThread();
  // Runs every callback still waiting, then joins the thread.
  ~CallbackThread();
  CallbackThread(const CallbackThread&) = delete;
  CallbackThread& operator=(const CallbackThread&) = delete;

  // Runs `callback` on the thread, after those posted before it.
  void Post(std::function<void()> callback);

 private:
  void Loop();

  absl::Mutex mutex_;
  std::deque<std::function<void()>> callbacks_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace drr::server
