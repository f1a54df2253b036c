// Bounds the uploads in progress: how many at once (--max-concurrent-uploads)
// and how long one may go without a chunk (--upload-idle-timeout), so that
// half-open uploads cannot pile up.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace drr::server {

// Counts uploads and cancels those idle too long, from a thread of its own.
class UploadTracker {
 public:
  // One upload in progress. Its call's context stays valid until Close.
  class Ticket {
   public:
    explicit Ticket(grpc::CallbackServerContext* call) : call_(call) {}
    // A chunk arrived.
    void Touch();
    // The upload is over; the tracker no longer touches its call.
    void Close();

   private:
    friend class UploadTracker;
    // Whether Close was called (or the tracker cancelled the call).
    bool closed() const;
    // Cancels the call unless it is closed or was touched since `since`.
    bool CancelIfIdleSince(std::chrono::steady_clock::time_point since);

    mutable absl::Mutex mutex_;
    grpc::CallbackServerContext* const call_;
    std::chrono::steady_clock::time_point touched_ ABSL_GUARDED_BY(mutex_) =
        std::chrono::steady_clock::now();
    bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  };

  // At most `max_uploads` at once; each cancelled after `idle_timeout`
  // without a chunk.
  UploadTracker(int max_uploads, std::chrono::milliseconds idle_timeout);
  // Stops watching.
  ~UploadTracker();
  UploadTracker(const UploadTracker&) = delete;
  UploadTracker& operator=(const UploadTracker&) = delete;

  // A ticket for the upload of `call`, or RESOURCE_EXHAUSTED when
  // max_uploads are in progress. Close it when the upload ends.
  absl::StatusOr<std::shared_ptr<Ticket>> Begin(
      grpc::CallbackServerContext* call);

  // Uploads in progress.
  int active() const;

  // The server drains: from now on an upload is cancelled after
  // kDrainingIdleTimeout without a chunk (a half-open upload must not hold
  // the drain for the whole idle timeout).
  void Drain();

  // How long an upload may idle once the server drains.
  static constexpr std::chrono::milliseconds kDrainingIdleTimeout{1000};

 private:
  void Watch();

  const int max_uploads_;
  mutable absl::Mutex mutex_;
  std::chrono::milliseconds idle_timeout_ ABSL_GUARDED_BY(mutex_);
  std::map<Ticket*, std::shared_ptr<Ticket>> tickets_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread watcher_;
};

}  // namespace drr::server
