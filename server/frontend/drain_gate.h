// The server's door for a graceful drain (SIGTERM): open until the drain
// begins, then every new call and every new stream frame is refused with
// UNAVAILABLE, while the work already let in is counted down to zero.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace drr::server {

// Admits calls until closed, and counts the admitted work still in flight.
class DrainGate {
 public:
  // OK while open; UNAVAILABLE, saying the server is draining, once closed.
  absl::Status Check() const;
  // Check, and when OK counts one unit of work (a render, a stream frame, an
  // upload) in flight until the matching Leave.
  absl::Status Enter();
  // Ends one unit of work admitted by Enter.
  void Leave();
  // Refuses every later Check and Enter.
  void Close();
  // Waits until no admitted work is in flight, or `timeout` has passed; true
  // when none is left.
  bool WaitUntilIdle(absl::Duration timeout) const;

 private:
  mutable absl::Mutex mutex_;
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  int in_flight_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace drr::server
