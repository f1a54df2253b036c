// ThreadPool runs its calls on exactly as many threads as it was given, the
// calling thread among them.
#include "kernels/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <set>
#include <thread>

namespace drr::kernels {
namespace {

// The distinct threads that ran the calls of one ParallelFor over four
// indices per expected thread (32 at least). Each call waits until
// `expected` threads have entered (or, in a pool with fewer, until a deadline
// 10 s on), then holds its thread a few milliseconds, so every thread of the
// pool takes a share, however many it has.
std::set<std::thread::id> ThreadsThatRan(ThreadPool& pool, size_t expected) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::mutex mutex;
  std::condition_variable entered;
  std::set<std::thread::id> ids;
  pool.ParallelFor(std::max(32, 4 * static_cast<int>(expected)), [&](int) {
    {
      std::unique_lock<std::mutex> lock(mutex);
      ids.insert(std::this_thread::get_id());
      entered.notify_all();
      entered.wait_until(lock, deadline,
                         [&] { return ids.size() >= expected; });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  });
  return ids;
}

TEST(ThreadPoolTest, RunsOnTheCallerAndOneWorkerFewerThanItsThreads) {
  ThreadPool pool(3);
  const std::set<std::thread::id> ids = ThreadsThatRan(pool, 3);
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids.count(std::this_thread::get_id()), 1u);
}

TEST(ThreadPoolTest, OneThreadIsTheCallerAlone) {
  ThreadPool pool(1);
  const std::set<std::thread::id> ids = ThreadsThatRan(pool, 1);
  EXPECT_EQ(ids, std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST(ThreadPoolTest, ZeroThreadsIsOnePerHardwareThread) {
  const size_t hardware =
      std::max<size_t>(1, std::thread::hardware_concurrency());
  ThreadPool pool(0);
  EXPECT_EQ(ThreadsThatRan(pool, hardware).size(), hardware);
}

}  // namespace
}  // namespace drr::kernels
