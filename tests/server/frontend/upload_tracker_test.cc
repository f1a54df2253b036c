#include "server/frontend/upload_tracker.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>

#include "gtest/gtest.h"

// Under AddressSanitizer, freed memory is overwritten: Abseil's Mutex is not
// instrumented, so a lock released after its mutex is freed is caught only
// by the mutex's own check of the garbage it then finds.
extern "C" const char* __asan_default_options() {
  return "max_free_fill_size=4096";
}

namespace drr::server {
namespace {

using std::chrono::hours;

TEST(UploadTrackerTest, RefusesAnUploadBeyondTheLimit) {
  UploadTracker tracker(/*max_uploads=*/2, hours(1));
  grpc::CallbackServerContext call;
  auto first = tracker.Begin(&call);
  auto second = tracker.Begin(&call);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(tracker.active(), 2);
  const auto third = tracker.Begin(&call);
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(third.status().message().find("--max-concurrent-uploads"),
            std::string::npos);
}

// The reactor of a finished upload drops its ticket, so the tracker may hold
// the last reference when it forgets a closed ticket: it must not hold the
// ticket's lock then (the CI soak's "Mutex unlocked when destroyed" abort,
// which the sanitizer build reproduces every time).
TEST(UploadTrackerTest, ForgetsAClosedTicketItHoldsTheLastReferenceTo) {
  UploadTracker tracker(/*max_uploads=*/1, hours(1));
  grpc::CallbackServerContext call;
  for (int upload = 0; upload < 100; ++upload) {
    auto ticket = tracker.Begin(&call);
    ASSERT_TRUE(ticket.ok()) << upload << ": " << ticket.status();
    EXPECT_EQ(tracker.active(), 1);
    (*ticket)->Close();
    EXPECT_EQ(tracker.active(), 0);
    ticket->reset();  // as the reactor's OnDone does
  }
}

}  // namespace
}  // namespace drr::server
