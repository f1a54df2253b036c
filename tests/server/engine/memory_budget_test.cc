#include "server/engine/memory_budget.h"

#include <array>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "io/phantom.h"
#include "server/engine/render_engine.h"
#include "server/engine/target_store.h"
#include "server/engine/volume_store.h"
#include "tests/status_matchers.h"
#include "tests/temp_dir.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::ScopedTempDir;
using ::drr::testing::StatusIs;

TEST(MemoryBudgetTest, HoldsAreRefusedPastTheLimitAndGivenBack) {
  std::vector<std::pair<MemoryUse, int64_t>> heard;
  MemoryBudget budget(
      100, [&](MemoryUse use, int64_t used) { heard.emplace_back(use, used); });
  absl::StatusOr<MemoryHold> a = budget.Reserve(MemoryUse::kVolumes, 60, "a");
  ASSERT_THAT(a, IsOk());
  EXPECT_THAT(budget.Reserve(MemoryUse::kUploads, 41, "this upload").status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       ::testing::HasSubstr("this upload needs 41 bytes")));
  {
    absl::StatusOr<MemoryHold> b = budget.Reserve(MemoryUse::kUploads, 40, "b");
    ASSERT_THAT(b, IsOk());
    EXPECT_EQ(budget.used(), 100);
    EXPECT_EQ(budget.used(MemoryUse::kUploads), 40);
  }
  EXPECT_EQ(budget.used(), 60);
  MemoryHold moved = *std::move(a);
  EXPECT_EQ(budget.used(), 60);
  moved.Release();
  EXPECT_EQ(budget.used(), 0);
  EXPECT_EQ(heard.back(),
            (std::pair<MemoryUse, int64_t>{MemoryUse::kVolumes, 0}));
}

// The phantom (128×128×96 int16 HU) as stored: 3 MiB uploaded, 6 MiB per
// float32 resident copy (and 6 MiB more while it is derived).
class BudgetedStoreTest : public ::testing::Test {
 protected:
  BudgetedStoreTest() : cpu_(kernels::MakeCpuExecutor(1)) {
    phantom_ = MakeThoraxPhantom();
    id_ = ContentDigest(phantom_.header, phantom_.voxels);
  }

  // A second volume: the phantom with its affine moved.
  std::pair<std::string, HostVolume> Other() const {
    HostVolume other = phantom_;
    other.header.affine.m[0][3] += 1;
    return {ContentDigest(other.header, other.voxels), other};
  }

  std::unique_ptr<kernels::Executor> cpu_;
  HostVolume phantom_;
  std::string id_;
};

constexpr int64_t kMiB = int64_t{1} << 20;

// Counts the volume cache's events.
class CountingListener final : public CacheListener {
 public:
  void OnCacheEvent(CacheEvent event, int count) override {
    counts_[static_cast<int>(event)] += count;
  }
  int count(CacheEvent event) const {
    return counts_[static_cast<int>(event)].load();
  }

 private:
  std::array<std::atomic<int>, 5> counts_{};
};

TEST_F(BudgetedStoreTest, AVolumeThatCannotFitIsRefusedNamingWhatItNeeded) {
  MemoryBudget budget(2 * kMiB);  // less than its 3 MiB of voxels
  VolumeStore store(cpu_.get(), 4, 256, nullptr, &budget);
  EXPECT_THAT(store.Insert(id_, phantom_).status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       ::testing::HasSubstr("storing volume")));
  EXPECT_EQ(store.size(), 0);
  EXPECT_EQ(budget.used(), 0);  // nothing kept of the refused volume
}

TEST_F(BudgetedStoreTest, ACopyIsMadeResidentOnlyInTheStorageRendered) {
  MemoryBudget budget(64 * kMiB);
  VolumeStore store(cpu_.get(), 4, 256, nullptr, &budget);
  absl::StatusOr<std::shared_ptr<const StoredVolume>> stored =
      store.Insert(id_, phantom_);
  ASSERT_THAT(stored, IsOk());
  EXPECT_EQ(budget.used(MemoryUse::kResident), 0);
  ASSERT_THAT((*stored)->Resident({}, {kernels::StorageType::kFloat16, false}),
              IsOk());
  // 2 bytes a voxel as uploaded (int16) and 2 in float16: 4 in all.
  EXPECT_EQ(budget.used(), 6 * kMiB);
}

TEST_F(BudgetedStoreTest, IdleResidentCopiesMakeRoomAndComeBackOnDemand) {
  // Two volumes' voxels (6 MiB), one resident copy (6 MiB) and one being
  // derived (12 MiB at its peak), but not two copies.
  MemoryBudget budget(20 * kMiB);
  CountingListener events;
  VolumeStore store(cpu_.get(), 4, 256, nullptr, &budget, &events);
  ASSERT_THAT(store.Insert(id_, phantom_), IsOk());
  auto [other_id, other] = Other();
  ASSERT_THAT(store.Insert(other_id, other), IsOk());
  EXPECT_EQ(budget.used(MemoryUse::kVolumes), 6 * kMiB);
  absl::StatusOr<std::shared_ptr<const StoredVolume>> first = store.Get(id_);
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT((*first)->Resident({}, {}), IsOk());
  EXPECT_EQ(budget.used(MemoryUse::kResident), 6 * kMiB);
  // The second volume's copy needs room: the first one's idle copy goes.
  absl::StatusOr<std::shared_ptr<const StoredVolume>> second =
      store.Get(other_id);
  ASSERT_THAT(second, IsOk());
  ASSERT_THAT((*second)->Resident({}, {}), IsOk());
  EXPECT_EQ((*first)->resident_bytes(), 0);
  EXPECT_LE(budget.used(), budget.limit());
  // The first volume renders again: its copy is derived anew.
  EXPECT_THAT((*first)->Resident({}, {}), IsOk());
  EXPECT_EQ((*second)->resident_bytes(), 0);
  EXPECT_LE(budget.used(), budget.limit());
  EXPECT_THAT((*first)->Resident({}, {}), IsOk());
  EXPECT_EQ(events.count(CacheEvent::kMiss), 3);
  EXPECT_EQ(events.count(CacheEvent::kHit), 1);
  EXPECT_EQ(events.count(CacheEvent::kEviction), 2);
}

TEST_F(BudgetedStoreTest, WithADataDirIdleVolumesAreUnloadedAndReloaded) {
  ScopedTempDir dir;
  absl::StatusOr<std::unique_ptr<DiskArchive>> archive =
      DiskArchive::Open(dir.path());
  ASSERT_THAT(archive, IsOk());
  // Both volumes' voxels (6 MiB) and one copy being derived (12 MiB), not
  // more.
  MemoryBudget budget(16 * kMiB);
  CountingListener events;
  VolumeStore store(cpu_.get(), 4, 256, archive->get(), &budget, &events);
  ASSERT_THAT(store.Insert(id_, phantom_), IsOk());
  auto [other_id, other] = Other();
  {
    absl::StatusOr<std::shared_ptr<const StoredVolume>> second =
        store.Insert(other_id, other);
    ASSERT_THAT(second, IsOk());
    // Its copy unloads the first volume, which no render uses.
    ASSERT_THAT((*second)->Resident({}, {}), IsOk());
  }
  EXPECT_EQ(store.size(), 2);
  EXPECT_EQ(budget.used(MemoryUse::kVolumes), 3 * kMiB);
  absl::StatusOr<std::shared_ptr<const StoredVolume>> first = store.Get(id_);
  ASSERT_THAT(first, IsOk());  // reloaded from disk
  EXPECT_EQ((*first)->id(), id_);
  EXPECT_THAT((*first)->Resident({}, {}), IsOk());
  EXPECT_LE(budget.used(), budget.limit());
  EXPECT_EQ(events.count(CacheEvent::kLoad), 1);
  EXPECT_GE(events.count(CacheEvent::kUnload), 1);
}

TEST_F(BudgetedStoreTest, ALoadIsBudgetedBeforeTheFileIsRead) {
  ScopedTempDir dir;
  absl::StatusOr<std::unique_ptr<DiskArchive>> archive =
      DiskArchive::Open(dir.path());
  ASSERT_THAT(archive, IsOk());
  ASSERT_THAT((*archive)->PutVolume(id_, phantom_), IsOk());
  // Room for less than the phantom's 3 MiB of voxels.
  MemoryBudget small(2 * kMiB);
  VolumeStore store(cpu_.get(), 4, 256, archive->get(), &small);
  EXPECT_THAT(store.Get(id_).status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       ::testing::HasSubstr("loading volume")));
  EXPECT_EQ(small.used(), 0);
  EXPECT_EQ(store.size(), 1);  // still stored, loadable once there is room
  MemoryBudget enough(4 * kMiB);
  VolumeStore roomier(cpu_.get(), 4, 256, archive->get(), &enough);
  ASSERT_THAT(roomier.Get(id_), IsOk());
  EXPECT_EQ(enough.used(MemoryUse::kVolumes), StoredBytes(phantom_.header));
}

TEST_F(BudgetedStoreTest, ConcurrentFirstUsesAfterARestartLoadTheVolumeOnce) {
  ScopedTempDir dir;
  absl::StatusOr<std::unique_ptr<DiskArchive>> archive =
      DiskArchive::Open(dir.path());
  ASSERT_THAT(archive, IsOk());
  {
    VolumeStore before(cpu_.get(), 4, 256, archive->get());
    ASSERT_THAT(before.Insert(id_, phantom_), IsOk());
  }
  // Room for one load (3 + 6 + 6 MiB at its peak), not two at once.
  MemoryBudget budget(16 * kMiB);
  VolumeStore store(cpu_.get(), 4, 256, archive->get(), &budget);
  std::vector<absl::StatusOr<std::shared_ptr<const StoredVolume>>> got(8);
  std::vector<std::thread> users;
  for (auto& result : got) {
    users.emplace_back([&store, &result, this] { result = store.Get(id_); });
  }
  for (std::thread& user : users) user.join();
  for (const auto& result : got) {
    ASSERT_THAT(result, IsOk());
    EXPECT_EQ(result->get(), got[0]->get());
  }
  EXPECT_EQ(budget.used(MemoryUse::kVolumes), 3 * kMiB);
}

TEST_F(BudgetedStoreTest, ARequestThatCannotFitIsRefusedAtOnce) {
  MemoryBudget budget(20 * kMiB);
  VolumeStore store(cpu_.get(), 4, 256, nullptr, &budget);
  ASSERT_THAT(store.Insert(id_, phantom_), IsOk());
  EngineOptions options;
  options.budget = &budget;
  RenderEngine engine(cpu_.get(), &store, nullptr, Limits{}, options);
  RenderCall call;
  call.volume_id = id_;
  call.intrinsics[0].height = call.intrinsics[0].width = 2048;
  call.poses.assign(4, ParameterizedPoseSpec{});
  absl::Status answered;
  engine.Submit(call, [&](absl::StatusOr<RenderResult> result) {
    answered = result.status();
  });
  EXPECT_THAT(answered, StatusIs(absl::StatusCode::kResourceExhausted,
                                 ::testing::HasSubstr("this render request")));
  // A small one fits, and gives its share back once answered.
  call.intrinsics[0].height = call.intrinsics[0].width = 16;
  call.poses.resize(1);
  EXPECT_THAT(engine.Render(call), IsOk());
  EXPECT_EQ(budget.used(MemoryUse::kRequests), 0);
}

TEST(TargetBudgetTest, TargetsHoldTheirPixelsUntilDeleted) {
  MemoryBudget budget(1000 * sizeof(float));
  TargetStore targets(Limits{}, nullptr, &budget);
  absl::StatusOr<std::shared_ptr<const Target>> small =
      targets.Insert(20, 30, std::vector<float>(600, 1.0f));
  ASSERT_THAT(small, IsOk());
  EXPECT_EQ(budget.used(MemoryUse::kTargets), 600 * 4);
  // The same image again takes nothing more; another that does not fit is
  // refused, naming it.
  ASSERT_THAT(targets.Insert(20, 30, std::vector<float>(600, 1.0f)), IsOk());
  EXPECT_EQ(budget.used(MemoryUse::kTargets), 600 * 4);
  EXPECT_THAT(targets.Insert(20, 30, std::vector<float>(600, 2.0f)).status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       ::testing::HasSubstr("target ")));
  const std::string id = (*small)->id;
  small->reset();
  ASSERT_THAT(targets.Delete(id), IsOk());
  EXPECT_EQ(budget.used(MemoryUse::kTargets), 0);
  EXPECT_THAT(targets.Insert(20, 30, std::vector<float>(600, 2.0f)), IsOk());
}

}  // namespace
}  // namespace drr::server
