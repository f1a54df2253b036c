#include "server/frontend/upload_tracker.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace drr::server {

void UploadTracker::Ticket::Touch() {
  absl::MutexLock lock(&mutex_);
  touched_ = std::chrono::steady_clock::now();
}

void UploadTracker::Ticket::Close() {
  absl::MutexLock lock(&mutex_);
  closed_ = true;
}

bool UploadTracker::Ticket::closed() const {
  absl::MutexLock lock(&mutex_);
  return closed_;
}

bool UploadTracker::Ticket::CancelIfIdleSince(
    std::chrono::steady_clock::time_point since) {
  absl::MutexLock lock(&mutex_);
  if (closed_) return true;  // done: forget it
  if (touched_ > since) return false;
  // Held under the lock, so that the call cannot end (Close) meanwhile. The
  // reactor hears of it on a gRPC thread (OnReadDone fails).
  call_->TryCancel();
  closed_ = true;
  return true;
}

UploadTracker::UploadTracker(int max_uploads,
                             std::chrono::milliseconds idle_timeout)
    : max_uploads_(max_uploads),
      idle_timeout_(idle_timeout),
      watcher_([this] { Watch(); }) {}

UploadTracker::~UploadTracker() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  watcher_.join();
}

absl::StatusOr<std::shared_ptr<UploadTracker::Ticket>> UploadTracker::Begin(
    grpc::CallbackServerContext* call) {
  absl::MutexLock lock(&mutex_);
  // Closed tickets the watcher has not yet collected do not count. (Erased
  // with their lock released: the tracker may hold their last reference.)
  for (auto it = tickets_.begin(); it != tickets_.end();) {
    it = it->second->closed() ? tickets_.erase(it) : std::next(it);
  }
  if (static_cast<int>(tickets_.size()) >= max_uploads_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(max_uploads_,
                     " uploads are in progress, the server's limit "
                     "(--max-concurrent-uploads); retry later"));
  }
  auto ticket = std::make_shared<Ticket>(call);
  tickets_.emplace(ticket.get(), ticket);
  return ticket;
}

int UploadTracker::active() const {
  absl::MutexLock lock(&mutex_);
  int open = 0;
  for (const auto& [key, ticket] : tickets_) {
    if (!ticket->closed()) ++open;
  }
  return open;
}

void UploadTracker::Drain() {
  absl::MutexLock lock(&mutex_);
  idle_timeout_ = std::min(idle_timeout_, kDrainingIdleTimeout);
}

void UploadTracker::Watch() {
  absl::MutexLock lock(&mutex_);
  while (true) {
    // Often enough to cancel within a quarter of the timeout of its due
    // time.
    const auto period = std::clamp<std::chrono::milliseconds>(
        idle_timeout_ / 4, std::chrono::milliseconds(5),
        std::chrono::milliseconds(250));
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
      return stopping_;
    };
    if (mutex_.AwaitWithTimeout(absl::Condition(&stopping),
                                absl::FromChrono(period))) {
      return;
    }
    const auto since = std::chrono::steady_clock::now() - idle_timeout_;
    for (auto it = tickets_.begin(); it != tickets_.end();) {
      it = it->second->CancelIfIdleSince(since) ? tickets_.erase(it)
                                                : std::next(it);
    }
  }
}

}  // namespace drr::server
