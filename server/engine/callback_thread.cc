#include "server/engine/callback_thread.h"

#include <utility>

namespace drr::server {

CallbackThread::CallbackThread() : thread_([this] { Loop(); }) {}

CallbackThread::~CallbackThread() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void CallbackThread::Post(std::function<void()> callback) {
  absl::MutexLock lock(&mutex_);
  callbacks_.push_back(std::move(callback));
}

void CallbackThread::Loop() {
  while (true) {
    std::function<void()> next;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](CallbackThread* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t->mutex_) {
            return t->stopping_ || !t->callbacks_.empty();
          },
          this));
      if (callbacks_.empty()) return;  // stopping, all run
      next = std::move(callbacks_.front());
      callbacks_.pop_front();
    }
    next();
  }
}

}  // namespace drr::server
