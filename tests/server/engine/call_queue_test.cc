#include "server/engine/call_queue.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/executor.h"
#include "server/engine/volume_store.h"
#include "volume/volume.h"

namespace drr::server {
namespace {

// A queued call of `client` with `poses` poses of volume `volume`, its frame
// id `frame` (to tell calls apart).
QueuedCall Call(const std::string& client, uint64_t frame, int poses = 1,
                const std::string& volume = "v") {
  QueuedCall q;
  q.call.scheduling.client = client;
  q.call.scheduling.frame_id = frame;
  q.call.poses.resize(poses);
  q.launch.volume_id = volume;
  q.launch.settings.rays = {8, 8, 100};
  q.enqueued = std::chrono::steady_clock::now();
  return q;
}

// Pushes `q`, expecting room and nothing dropped.
void Push(CallQueue& queue, QueuedCall q) {
  std::vector<DroppedCall> dropped;
  ASSERT_TRUE(queue.Push(&q, &dropped));
  ASSERT_TRUE(dropped.empty());
}

// The frame ids of `batch`.
std::vector<uint64_t> Frames(const std::vector<QueuedCall>& batch) {
  std::vector<uint64_t> frames;
  for (const QueuedCall& q : batch)
    frames.push_back(q.call.scheduling.frame_id);
  return frames;
}

// The frame ids of the next batch of at most `max_poses` poses, expecting
// nothing dropped.
std::vector<uint64_t> Take(CallQueue& queue, int max_poses) {
  std::vector<DroppedCall> dropped;
  std::vector<uint64_t> frames =
      Frames(queue.TakeBatch(max_poses, LaunchEstimate{}, &dropped));
  EXPECT_TRUE(dropped.empty());
  return frames;
}

// A frame `f` of LATEST stream `stream` of one client.
QueuedCall LatestFrame(uint64_t stream, uint64_t f) {
  QueuedCall q = Call("navigator", f);
  q.call.scheduling.latest_stream = stream;
  q.call.scheduling.arrival = f;
  return q;
}

TEST(CallQueueTest, ClientsAreServedInTurnWhateverTheyQueued) {
  CallQueue queue(100);
  for (uint64_t f = 1; f <= 5; ++f) Push(queue, Call("greedy", f));
  Push(queue, Call("modest", 100));
  // One pose per launch: no batching, only the order of service.
  std::vector<uint64_t> order;
  while (!queue.empty()) order.push_back(Take(queue, 1).at(0));
  EXPECT_EQ(order, (std::vector<uint64_t>{1, 100, 2, 3, 4, 5}));
}

TEST(CallQueueTest, InteractiveCallsGoBeforeBatchCalls) {
  CallQueue queue(100);
  QueuedCall background = Call("a", 1);
  background.call.scheduling.priority = Priority::kBatch;
  Push(queue, std::move(background));
  Push(queue, Call("b", 2));
  EXPECT_EQ(Take(queue, 1), std::vector<uint64_t>{2});
  EXPECT_EQ(Take(queue, 1), std::vector<uint64_t>{1});
}

TEST(CallQueueTest, BatchesGatherCompatibleCallsOnePerClientPerRound) {
  CallQueue queue(100);
  Push(queue, Call("a", 1, 2));
  Push(queue, Call("a", 2, 2));
  Push(queue, Call("b", 3, 2, "other volume"));
  Push(queue, Call("b", 4, 2));
  Push(queue, Call("c", 5, 3));
  // a's first call, then c's (b's next call is of another volume, and b's
  // calls stay in order), then a's second: 2 + 3 + 2 poses.
  EXPECT_EQ(Take(queue, 9), (std::vector<uint64_t>{1, 5, 2}));
  EXPECT_EQ(Take(queue, 9), std::vector<uint64_t>{3});
  EXPECT_EQ(Take(queue, 9), std::vector<uint64_t>{4});
  EXPECT_TRUE(queue.empty());

  // The pose budget is kept: a call that does not fit waits.
  Push(queue, Call("a", 6, 3));
  Push(queue, Call("b", 7, 2));
  Push(queue, Call("c", 8, 1));
  EXPECT_EQ(Take(queue, 4), (std::vector<uint64_t>{6, 8}));
  // A call larger than the budget still runs, alone.
  Push(queue, Call("d", 9, 10));
  EXPECT_EQ(Take(queue, 4), std::vector<uint64_t>{7});
  EXPECT_EQ(Take(queue, 4), std::vector<uint64_t>{9});
}

TEST(CallQueueTest, OneClientsWaitingCallsShareALaunch) {
  CallQueue queue(100);
  for (uint64_t f = 1; f <= 6; ++f) Push(queue, Call("a", f));
  EXPECT_EQ(Take(queue, 64), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(CallQueueTest, ANewerFrameOfALatestStreamSupersedesTheWaitingOnes) {
  CallQueue queue(100);
  auto frame = LatestFrame;
  Push(queue, frame(7, 1));
  Push(queue, frame(8, 50));  // another stream of the same client stays
  std::vector<DroppedCall> dropped;
  QueuedCall second = frame(7, 2);
  ASSERT_TRUE(queue.Push(&second, &dropped));
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].queued.call.scheduling.frame_id, 1u);
  EXPECT_EQ(dropped[0].why.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(dropped[0].why.message(), "superseded by frame 2");
  EXPECT_EQ(queue.size(), 2);
  // An ORDERED call (stream 0) supersedes nothing.
  dropped.clear();
  QueuedCall ordered = Call("navigator", 3);
  ASSERT_TRUE(queue.Push(&ordered, &dropped));
  EXPECT_TRUE(dropped.empty());
}

TEST(CallQueueTest, SupersessionReachesFramesOfAnotherPriority) {
  CallQueue queue(100);
  QueuedCall background = LatestFrame(7, 1);
  background.call.scheduling.priority = Priority::kBatch;
  Push(queue, std::move(background));
  std::vector<DroppedCall> dropped;
  QueuedCall urgent = LatestFrame(7, 2);
  ASSERT_TRUE(queue.Push(&urgent, &dropped));
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].queued.call.scheduling.frame_id, 1u);
  EXPECT_EQ(Take(queue, 1), std::vector<uint64_t>{2});
  EXPECT_TRUE(queue.empty());
}

TEST(CallQueueTest, ANewerFrameReplacesItsStreamsFrameInABatchBeingFilled) {
  CallQueue queue(100);
  Push(queue, LatestFrame(7, 1));
  Push(queue, Call("other", 50));
  std::vector<DroppedCall> dropped;
  std::vector<QueuedCall> batch =
      queue.TakeBatch(1, LaunchEstimate{}, &dropped);
  ASSERT_EQ(Frames(batch), std::vector<uint64_t>{1});
  // Frame 2 arrives while the batch waits for more calls (a batch delay).
  Push(queue, LatestFrame(7, 2));
  queue.AddCompatible(64, LaunchEstimate{}, &batch, &dropped);
  EXPECT_EQ(Frames(batch), (std::vector<uint64_t>{50, 2}));
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].queued.call.scheduling.frame_id, 1u);
  EXPECT_EQ(dropped[0].why.message(), "superseded by frame 2");
}

TEST(CallQueueTest, AFullQueueFirstDropsCallsNobodyWants) {
  CallQueue queue(2);
  QueuedCall late = Call("a", 1);
  late.call.deadline = std::chrono::steady_clock::now();
  Push(queue, std::move(late));
  Push(queue, Call("b", 2));
  std::vector<DroppedCall> dropped;
  QueuedCall third = Call("c", 3);
  ASSERT_TRUE(queue.Push(&third, &dropped));
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].why.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(queue.size(), 2);
}

TEST(CallQueueTest, ExpiredAndCancelledCallsAreDroppedWithTheirReason) {
  CallQueue queue(100);
  QueuedCall late = Call("a", 1);
  late.call.deadline = std::chrono::steady_clock::now();
  QueuedCall abandoned = Call("b", 2);
  abandoned.call.cancelled = std::make_shared<std::atomic<bool>>(true);
  Push(queue, std::move(late));
  Push(queue, std::move(abandoned));
  Push(queue, Call("c", 3));
  std::vector<DroppedCall> dropped;
  queue.DropUnwanted(&dropped);
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(dropped[0].why.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(dropped[1].why.code(), absl::StatusCode::kCancelled);
  EXPECT_NE(dropped[0].why.message().find("not rendered"), std::string::npos);
  EXPECT_EQ(Take(queue, 1), std::vector<uint64_t>{3});
  EXPECT_TRUE(queue.empty());
}

TEST(CallQueueTest, AFullQueueLeavesTheCallWithItsCaller) {
  CallQueue queue(1);
  Push(queue, Call("a", 1));
  QueuedCall refused = Call("b", 2);
  refused.done = [](absl::StatusOr<RenderResult>) {};
  std::vector<DroppedCall> dropped;
  EXPECT_FALSE(queue.Push(&refused, &dropped));
  EXPECT_TRUE(refused.done);  // not moved from: the caller answers it
  EXPECT_EQ(queue.size(), 1);
  EXPECT_EQ(queue.TakeAll().size(), 1u);
  EXPECT_TRUE(queue.empty());
}

TEST(CallQueueTest, AContinuationQueuesPastTheBound) {
  CallQueue queue(1);
  Push(queue, Call("a", 1));
  QueuedCall next_iteration = Call("b", 2);
  next_iteration.call.scheduling.continuation = true;
  std::vector<DroppedCall> dropped;
  EXPECT_TRUE(queue.Push(&next_iteration, &dropped));
  EXPECT_EQ(queue.size(), 2);
  EXPECT_TRUE(dropped.empty());
}

TEST(CallQueueTest, ASiddonRayCountsTheVoxelsItCanCrossNotSamples) {
  std::unique_ptr<kernels::Executor> cpu = kernels::MakeCpuExecutor(1);
  HostVolume v;
  v.header.voxel_type = VoxelType::kFloat32;
  v.header.value_kind = ValueKind::kAttenuation;
  v.header.width = 10;
  v.header.height = 20;
  v.header.depth = 30;
  v.voxels.assign(v.header.voxel_bytes(), '\0');
  QueuedCall q = Call("a", 1);
  q.volume =
      std::make_shared<StoredVolume>("v", std::move(v), std::vector<uint16_t>{},
                                     1, cpu.get(), 0, StoredVolume::Memory{});
  EXPECT_EQ(q.ray_samples(), 8 * 8 * 100);
  q.launch.settings.projector = kernels::Projector::kSiddon;
  EXPECT_EQ(q.steps_per_ray(), 60);
  EXPECT_EQ(q.ray_samples(), 8 * 8 * 60);
}

TEST(CallQueueTest, ABatchGrowsOnlyAsFarAsItsCallsDeadlinesAllow) {
  const auto now = std::chrono::steady_clock::now();
  // Each call is 8 × 8 × 100 = 6400 ray samples: 10 ms at this estimate.
  const LaunchEstimate estimate{10e-3 / 6400, now};
  CallQueue queue(100);
  QueuedCall hurried = Call("a", 1);
  hurried.call.deadline = now + std::chrono::milliseconds(25);
  Push(queue, std::move(hurried));
  for (uint64_t f = 2; f <= 5; ++f)
    Push(queue, Call("b" + std::to_string(f), f));
  std::vector<DroppedCall> dropped;
  // Two calls end by the first one's deadline (20 ms), a third would not.
  EXPECT_EQ(Frames(queue.TakeBatch(64, estimate, &dropped)),
            (std::vector<uint64_t>{1, 2}));
  // Without deadlines the rest go together.
  EXPECT_EQ(Frames(queue.TakeBatch(64, estimate, &dropped)),
            (std::vector<uint64_t>{3, 4, 5}));
  // A call whose own deadline a grown batch would miss waits for the next.
  Push(queue, Call("c", 6));
  QueuedCall late = Call("d", 7);
  late.call.deadline = now + std::chrono::milliseconds(15);
  Push(queue, std::move(late));
  EXPECT_EQ(Frames(queue.TakeBatch(64, estimate, &dropped)),
            (std::vector<uint64_t>{6}));
  EXPECT_EQ(Frames(queue.TakeBatch(64, estimate, &dropped)),
            (std::vector<uint64_t>{7}));
  // An unknown estimate holds nothing back.
  QueuedCall first = Call("e", 8);
  first.call.deadline = now;
  Push(queue, std::move(first));
  Push(queue, Call("f", 9));
  EXPECT_EQ(Frames(queue.TakeBatch(64, LaunchEstimate{0, now}, &dropped)),
            (std::vector<uint64_t>{8, 9}));
  EXPECT_TRUE(dropped.empty());
}

TEST(CallQueueTest, AnEarlierFrameReachingTheQueueLateIsTheOneSuperseded) {
  CallQueue queue(100);
  std::vector<DroppedCall> dropped;
  // Frame 2 reaches the queue first (frame 1 waited for its volume to load).
  QueuedCall second = LatestFrame(7, 2);
  ASSERT_TRUE(queue.Push(&second, &dropped));
  QueuedCall first = LatestFrame(7, 1);
  ASSERT_TRUE(queue.Push(&first, &dropped));
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].queued.call.scheduling.frame_id, 1u);
  EXPECT_EQ(dropped[0].why.message(), "superseded by frame 2");
  dropped.clear();
  EXPECT_EQ(Frames(queue.TakeBatch(64, LaunchEstimate{}, &dropped)),
            (std::vector<uint64_t>{2}));
  // Likewise against a batch that already holds the later frame.
  std::vector<QueuedCall> batch;
  batch.push_back(LatestFrame(7, 4));
  Push(queue, LatestFrame(7, 3));
  queue.AddCompatible(64, LaunchEstimate{}, &batch, &dropped);
  EXPECT_EQ(Frames(batch), (std::vector<uint64_t>{4}));
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].why.message(), "superseded by frame 4");
  EXPECT_TRUE(queue.empty());
}

}  // namespace
}  // namespace drr::server
