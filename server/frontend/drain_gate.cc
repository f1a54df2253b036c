#include "server/frontend/drain_gate.h"

namespace drr::server {
namespace {

absl::Status Draining() {
  return absl::UnavailableError(
      "the server is draining (shutting down); retry on another replica");
}

}  // namespace

absl::Status DrainGate::Check() const {
  absl::MutexLock lock(&mutex_);
  return closed_ ? Draining() : absl::OkStatus();
}

absl::Status DrainGate::Enter() {
  absl::MutexLock lock(&mutex_);
  if (closed_) return Draining();
  ++in_flight_;
  return absl::OkStatus();
}

void DrainGate::Leave() {
  absl::MutexLock lock(&mutex_);
  --in_flight_;
}

void DrainGate::Close() {
  absl::MutexLock lock(&mutex_);
  closed_ = true;
}

bool DrainGate::WaitUntilIdle(absl::Duration timeout) const {
  absl::MutexLock lock(&mutex_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return in_flight_ == 0;
  };
  return mutex_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

}  // namespace drr::server
