// Several devices in one process: choosing them, placing volumes on them, and
// each device's budget for its resident copies — CPU executors stand in for
// GPUs.
#include "server/engine/device_pool.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/phantom.h"
#include "server/engine/device.h"
#include "server/engine/volume_store.h"
#include "tests/status_matchers.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kMiB = int64_t{1} << 20;

TEST(DeviceListTest, ParsesAllOrDistinctOrdinals) {
  absl::StatusOr<DeviceList> all = ParseDeviceList("all");
  ASSERT_THAT(all, IsOk());
  EXPECT_TRUE(all->all());
  absl::StatusOr<DeviceList> some = ParseDeviceList("2,0,5");
  ASSERT_THAT(some, IsOk());
  EXPECT_THAT(some->ordinals, ElementsAre(2, 0, 5));
  for (const char* bad : {"", "0,", "-1", "1,1", "x", "0;1", "64", "1.5"}) {
    EXPECT_THAT(
        ParseDeviceList(bad).status(),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--devices")))
        << bad;
  }
}

TEST(SelectExecutorsTest, CpuExecutorsStandInForTheDevicesListed) {
  absl::StatusOr<SelectedExecutors> two =
      SelectExecutors(DeviceMode::kCpu, {{0, 3}}, 1);
  ASSERT_THAT(two, IsOk());
  ASSERT_EQ(two->devices.size(), 2u);
  EXPECT_EQ(two->devices[0].label, "cpu:0");
  EXPECT_EQ(two->devices[1].label, "cpu:3");
  EXPECT_EQ(two->devices[1].ordinal, 3);
  EXPECT_NE(two->devices[0].executor.get(), two->devices[1].executor.get());
  EXPECT_EQ(two->devices[1].executor->name(), "cpu");
  absl::StatusOr<SelectedExecutors> all =
      SelectExecutors(DeviceMode::kCpu, {}, 1);
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->devices.size(), 1u);
}

TEST(SelectExecutorsTest, MoreCpuThreadsInAllThanTheBoundAreRefused) {
  EXPECT_THAT(
      SelectExecutors(DeviceMode::kCpu, {}, kMostCpuThreads + 1).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("is 1025 threads, more than the 1024")));
  EXPECT_THAT(
      SelectExecutors(DeviceMode::kCpu, {{0, 1}}, kMostCpuThreads / 2 + 1)
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("--cpu-threads 513 for each of 2 CPU executors")));
}

TEST(SelectExecutorsTest, CudaDevicesThatAreNotThereAreRefused) {
  if (kernels::ProbeCuda().device_count > 0) {
    absl::StatusOr<SelectedExecutors> missing =
        SelectExecutors(DeviceMode::kAuto, {{63}}, 1);
    EXPECT_THAT(missing.status(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("CUDA device 63")));
    return;
  }
  EXPECT_THAT(SelectExecutors(DeviceMode::kCuda, {}, 1).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  // kAuto without CUDA: the listed devices on the CPU.
  absl::StatusOr<SelectedExecutors> fallback =
      SelectExecutors(DeviceMode::kAuto, {{0, 1}}, 1);
  ASSERT_THAT(fallback, IsOk());
  EXPECT_EQ(fallback->devices.size(), 2u);
  EXPECT_THAT(fallback->reason, HasSubstr("CPU fallback"));
}

// Volume ids as drrserve makes them: hex SHA-256 digests.
std::vector<std::string> SomeIds(int n) {
  HostVolume volume = MakeThoraxPhantom();
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    volume.header.affine.m[0][3] = i;
    ids.push_back(ContentDigest(volume.header, ""));
  }
  return ids;
}

TEST(RendezvousTest, SpreadsIdsEvenlyAndMovesOnlyThoseOfADeviceTakenAway) {
  const std::vector<std::string> ids = SomeIds(2000);
  const std::vector<int> four = {0, 1, 2, 3}, three = {0, 1, 3};
  std::map<int, int> per_device;
  int moved = 0;
  for (const std::string& id : ids) {
    const int picked = four[RendezvousPick(id, four)];
    EXPECT_EQ(four[RendezvousPick(id, four)], picked);  // stable
    ++per_device[picked];
    const int without_two = three[RendezvousPick(id, three)];
    if (picked != 2) {
      EXPECT_EQ(without_two, picked) << id;
    } else {
      ++moved;
    }
  }
  // 500 each expected; a fair hash stays well within ±20 %.
  for (int device : four) {
    EXPECT_GT(per_device[device], 400) << device;
    EXPECT_LT(per_device[device], 600) << device;
  }
  EXPECT_EQ(moved, per_device[2]);
  // Ordinals, not positions, decide: the same set in another order agrees.
  const std::vector<int> shuffled = {3, 1, 0, 2};
  for (const std::string& id : ids) {
    EXPECT_EQ(shuffled[RendezvousPick(id, shuffled)],
              four[RendezvousPick(id, four)]);
  }
}

// Two CPU executors standing in for two devices, each with a budget of
// `device_budget` for its resident copies; the phantom stores 3 MiB and
// makes a 6 MiB float32 copy.
class TwoDeviceStoreTest : public ::testing::Test {
 protected:
  explicit TwoDeviceStoreTest(int64_t device_budget = 64 * kMiB)
      : pool_(
            Devices(),
            [device_budget](const SelectedDevice&, int) {
              return device_budget;
            },
            [this](int index, int64_t bytes) { heard_[index] = bytes; }) {}

  static std::vector<SelectedDevice> Devices() {
    return std::move(SelectExecutors(DeviceMode::kCpu, {{0, 1}}, 1)->devices);
  }

  // `n` phantoms placed on device `index` (moved by whole millimetres until
  // their ids hash there).
  std::vector<std::pair<std::string, HostVolume>> PlacedOn(int index, int n) {
    std::vector<std::pair<std::string, HostVolume>> placed;
    HostVolume volume = MakeThoraxPhantom();
    for (int offset = 0; static_cast<int>(placed.size()) < n; ++offset) {
      volume.header.affine.m[0][3] = offset;
      const std::string id = ContentDigest(volume.header, volume.voxels);
      if (pool_.Place(id) == index) placed.emplace_back(id, volume);
    }
    return placed;
  }

  DevicePool pool_;
  std::map<int, int64_t> heard_;
};

TEST_F(TwoDeviceStoreTest, EachVolumeIsResidentOnTheDeviceItIsPlacedOn) {
  VolumeStore store(
      pool_.Residences(),
      [this](const std::string& id) { return pool_.Place(id); }, 8);
  EXPECT_EQ(pool_.device(1).label, "cpu:1");
  for (int index : {0, 1}) {
    for (auto& [id, volume] : PlacedOn(index, 2)) {
      absl::StatusOr<std::shared_ptr<const StoredVolume>> stored =
          store.Insert(id, volume);
      ASSERT_THAT(stored, IsOk());
      EXPECT_EQ((*stored)->device(), index);
      EXPECT_EQ((*stored)->executor(), pool_.device(index).executor.get());
      absl::StatusOr<std::shared_ptr<const kernels::ResidentVolume>> resident =
          (*stored)->Resident({}, {});
      ASSERT_THAT(resident, IsOk());
    }
  }
  EXPECT_THAT(store.CountByResidence(), ElementsAre(2, 2));
  for (int index : {0, 1}) {
    EXPECT_EQ(pool_.device(index).budget->used(MemoryUse::kResident),
              2 * 6 * kMiB);
    EXPECT_EQ(heard_[index], 2 * 6 * kMiB);
  }
}

class SmallDeviceBudgetTest : public TwoDeviceStoreTest {
 protected:
  // Room for one float32 copy of the phantom per device, not two.
  SmallDeviceBudgetTest() : TwoDeviceStoreTest(10 * kMiB) {}
};

TEST_F(SmallDeviceBudgetTest, ADeviceMakesRoomFromItsOwnIdleCopiesOnly) {
  VolumeStore store(
      pool_.Residences(),
      [this](const std::string& id) { return pool_.Place(id); }, 8);
  const auto on_zero = PlacedOn(0, 2);
  const auto on_one = PlacedOn(1, 1);
  std::vector<std::shared_ptr<const StoredVolume>> zero;
  for (const auto& [id, volume] : on_zero) {
    zero.push_back(*store.Insert(id, volume));
  }
  std::shared_ptr<const StoredVolume> one =
      *store.Insert(on_one[0].first, on_one[0].second);
  // Device 1's volume is the least recently used: the first a reclaimer
  // that ignored devices would take.
  ASSERT_THAT(store.Get(on_one[0].first), IsOk());
  for (const auto& [id, volume] : on_zero) ASSERT_THAT(store.Get(id), IsOk());
  ASSERT_THAT(one->Resident({}, {}), IsOk());
  ASSERT_THAT(zero[0]->Resident({}, {}), IsOk());
  // Device 0's second copy takes the room of its first, idle one; device
  // 1's copy stays.
  ASSERT_THAT(zero[1]->Resident({}, {}), IsOk());
  EXPECT_EQ(zero[0]->resident_bytes(), 0);
  EXPECT_EQ(one->resident_bytes(), 6 * kMiB);
  // A copy in use is not taken: with device 0's copy held, its other
  // volume's copy cannot be made, and the refusal names the device budget.
  absl::StatusOr<std::shared_ptr<const kernels::ResidentVolume>> held =
      zero[1]->Resident({}, {});
  ASSERT_THAT(held, IsOk());
  EXPECT_THAT(zero[0]->Resident({}, {}).status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("device cpu:0 (--device-memory-budget)")));
  EXPECT_EQ(one->resident_bytes(), 6 * kMiB);
  EXPECT_LE(pool_.device(0).budget->used(), pool_.device(0).budget->limit());
}

}  // namespace
}  // namespace drr::server
