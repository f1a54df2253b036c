#include "server/engine/disk_archive.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "io/phantom.h"
#include "server/engine/memory_budget.h"
#include "server/engine/target_store.h"
#include "server/engine/volume_store.h"
#include "tests/status_matchers.h"
#include "tests/temp_dir.h"

namespace drr::server {
namespace {

using ::drr::testing::IsOk;
using ::drr::testing::ScopedTempDir;
using ::drr::testing::StatusIs;
namespace fs = std::filesystem;

// A small labelled volume and its id.
HostVolume SmallVolume() {
  HostVolume v;
  v.header.depth = 3;
  v.header.height = 4;
  v.header.width = 5;
  v.header.affine.m[0][3] = 7.5;
  v.header.label_type = VoxelType::kUInt8;
  v.voxels.resize(v.header.voxel_bytes());
  for (size_t i = 0; i < v.voxels.size(); ++i) v.voxels[i] = char(i * 7);
  v.labels.assign(v.header.voxels(), char(1));
  return v;
}

std::unique_ptr<DiskArchive> OpenArchive(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<DiskArchive>> archive = DiskArchive::Open(dir);
  EXPECT_THAT(archive, IsOk());
  return archive.ok() ? *std::move(archive) : nullptr;
}

TEST(DiskArchiveTest, VolumeFilesRoundTripAndAreTheirIdsBytes) {
  ScopedTempDir dir;
  auto archive = OpenArchive(dir.path());
  const HostVolume volume = SmallVolume();
  const std::string id =
      ContentDigest(volume.header, volume.voxels, volume.labels);
  ASSERT_THAT(archive->PutVolume(id, volume), IsOk());
  absl::StatusOr<HostVolume> back = archive->GetVolume(id);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->voxels, volume.voxels);
  EXPECT_EQ(back->labels, volume.labels);
  EXPECT_EQ(back->header.label_type, volume.header.label_type);
  EXPECT_EQ(back->header.affine.m[0][3], 7.5);
  // The file is exactly the bytes its id hashes.
  absl::StatusOr<std::string> bytes =
      archive->Get(DiskArchive::Kind::kVolume, id);
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(static_cast<int64_t>(bytes->size()),
            VolumeFileHeaderBytes() + volume.header.voxel_bytes() +
                volume.header.label_bytes());
  EXPECT_THAT(
      VolumeHeaderFromFileBytes(bytes->substr(0, VolumeFileHeaderBytes())),
      IsOk());
  EXPECT_FALSE(VolumeHeaderFromFileBytes("DRRVOL1").ok());
  // A truncated file is corrupt: set aside, never served.
  fs::resize_file(dir.File("volumes/" + id),
                  static_cast<uintmax_t>(bytes->size() - 1));
  EXPECT_THAT(
      archive->GetVolume(id).status(),
      StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("corrupt")));
  EXPECT_TRUE(fs::exists(dir.File("corrupt/volumes-" + id)));
}

TEST(DiskArchiveTest, FilesReserveTheirDiskSpaceUntilDone) {
  ScopedTempDir dir;
  auto archive = OpenArchive(dir.path());
  EXPECT_THAT(
      archive->Create(DiskArchive::Kind::kVolume, int64_t{1} << 62).status(),
      StatusIs(absl::StatusCode::kResourceExhausted,
               ::testing::HasSubstr("needs 4611686018427387904")));
  // Two files that each fit, but not together: the second is refused until
  // the first is dropped.
  const int64_t free_bytes =
      static_cast<int64_t>(fs::space(dir.path()).available);
  const int64_t most = free_bytes / 4 * 3;
  absl::StatusOr<std::unique_ptr<ArchiveFile>> first =
      archive->Create(DiskArchive::Kind::kVolume, most);
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(archive->Create(DiskArchive::Kind::kVolume, most).status(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  first->reset();
  EXPECT_THAT(archive->Create(DiskArchive::Kind::kVolume, most), IsOk());
  // Writing more than reserved is refused.
  absl::StatusOr<std::unique_ptr<ArchiveFile>> small =
      archive->Create(DiskArchive::Kind::kTarget, 3);
  ASSERT_THAT(small, IsOk());
  EXPECT_THAT((*small)->Append("abcd"), StatusIs(absl::StatusCode::kInternal));
}

TEST(DiskArchiveTest, StoresFindTheirVolumesAndTargetsAfterARestart) {
  ScopedTempDir dir;
  std::unique_ptr<kernels::Executor> cpu = kernels::MakeCpuExecutor(1);
  const HostVolume volume = SmallVolume();
  const std::string id =
      ContentDigest(volume.header, volume.voxels, volume.labels);
  std::string target_id;
  {
    auto archive = OpenArchive(dir.path());
    VolumeStore store(cpu.get(), 4, 256, archive.get());
    ASSERT_THAT(store.Insert(id, volume), IsOk());
    TargetStore targets(Limits{}, archive.get());
    absl::StatusOr<std::shared_ptr<const Target>> target =
        targets.Insert(2, 3, {1, 2, 3, 4, 5, 6});
    ASSERT_THAT(target, IsOk());
    target_id = (*target)->id;
  }
  // A leftover of a crash mid-write is removed, never listed.
  std::ofstream(dir.File("volumes/.tmp-partial")) << "half a volume";
  auto archive = OpenArchive(dir.path());
  EXPECT_FALSE(fs::exists(dir.File("volumes/.tmp-partial")));
  MemoryBudget budget(int64_t{1} << 30);
  VolumeStore store(cpu.get(), 4, 256, archive.get(), &budget);
  EXPECT_EQ(store.size(), 1);  // listed, not yet loaded
  EXPECT_EQ(store.resident_bytes(), 0);
  // Listing and describing read its header and labels, not its voxels.
  std::vector<VolumeSummary> listed = store.List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id, id);
  EXPECT_EQ(listed[0].classes, 2);
  EXPECT_EQ(listed[0].header.width, 5);
  EXPECT_THAT(store.Describe(id), IsOk());
  EXPECT_EQ(budget.used(MemoryUse::kVolumes), 0);
  absl::StatusOr<std::shared_ptr<const StoredVolume>> loaded = store.Get(id);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_GT(budget.used(MemoryUse::kVolumes), 0);
  EXPECT_EQ((*loaded)->classes(), 2);
  EXPECT_THAT((*loaded)->Resident({}, {}), IsOk());
  EXPECT_GT(store.resident_bytes(), 0);
  TargetStore targets(Limits{}, archive.get());
  absl::StatusOr<std::shared_ptr<const Target>> target = targets.Get(target_id);
  ASSERT_THAT(target, IsOk());
  EXPECT_EQ((*target)->pixels, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ((*target)->width, 3);

  // Deleting removes the file: a later restart does not see it.
  ASSERT_THAT(store.Delete(id), IsOk());
  ASSERT_THAT(targets.Delete(target_id), IsOk());
  EXPECT_TRUE(archive->List(DiskArchive::Kind::kVolume).empty());
  EXPECT_TRUE(archive->List(DiskArchive::Kind::kTarget).empty());
}

TEST(DiskArchiveTest, ACorruptFileIsSetAsideAndNeverServed) {
  ScopedTempDir dir;
  std::unique_ptr<kernels::Executor> cpu = kernels::MakeCpuExecutor(1);
  const HostVolume volume = SmallVolume();
  const std::string id =
      ContentDigest(volume.header, volume.voxels, volume.labels);
  {
    auto archive = OpenArchive(dir.path());
    VolumeStore store(cpu.get(), 4, 256, archive.get());
    ASSERT_THAT(store.Insert(id, volume), IsOk());
  }
  {
    std::fstream file(dir.File("volumes/" + id),
                      std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(200);
    file.put('\x7f');
  }
  auto archive = OpenArchive(dir.path());
  VolumeStore store(cpu.get(), 4, 256, archive.get());
  EXPECT_THAT(
      store.Get(id).status(),
      StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("corrupt")));
  EXPECT_FALSE(fs::exists(dir.File("volumes/" + id)));
  EXPECT_TRUE(fs::exists(dir.File("corrupt/volumes-" + id)));
  EXPECT_EQ(store.size(), 0);
  EXPECT_TRUE(store.List().empty());
  EXPECT_THAT(store.Get(id).status(), StatusIs(absl::StatusCode::kNotFound));
  // Uploading it again stores a good copy.
  ASSERT_THAT(store.Insert(id, volume), IsOk());
  EXPECT_TRUE(fs::exists(dir.File("volumes/" + id)));
}

TEST(DiskArchiveTest, AFileOfTheWrongSizeIsSetAsideWhenListed) {
  ScopedTempDir dir;
  std::unique_ptr<kernels::Executor> cpu = kernels::MakeCpuExecutor(1);
  const HostVolume volume = SmallVolume();
  const std::string id =
      ContentDigest(volume.header, volume.voxels, volume.labels);
  auto archive = OpenArchive(dir.path());
  ASSERT_THAT(archive->PutVolume(id, volume), IsOk());
  std::ofstream(dir.File("volumes/" + id), std::ios::app) << "trailing";
  VolumeStore store(cpu.get(), 4, 256, archive.get());
  EXPECT_EQ(store.size(), 1);
  EXPECT_TRUE(store.List().empty());
  EXPECT_EQ(store.size(), 0);
  EXPECT_TRUE(fs::exists(dir.File("corrupt/volumes-" + id)));
}

TEST(DiskArchiveTest, OwnerRecordsRoundTripAndDamagedSizesCountAsZero) {
  ScopedTempDir dir;
  auto archive = OpenArchive(dir.path());
  const std::string id(64, 'a'), damaged(64, 'b'), overflowing(64, 'c');
  ASSERT_THAT(archive->SetOwners(DiskArchive::Kind::kVolume, id,
                                 {1234, {"alice", "bob"}}),
              IsOk());
  for (const auto& [name, size] :
       {std::pair{damaged, "-5"},
        std::pair{overflowing, "99999999999999999999"}}) {
    std::ofstream(dir.File("owners/volumes-" + name))
        << "#bytes " << size << "\nalice\n";
  }
  const auto owners = archive->Owners(DiskArchive::Kind::kVolume);
  ASSERT_EQ(owners.size(), 3u);
  EXPECT_EQ(owners.at(id).bytes, 1234);
  EXPECT_EQ(owners.at(id).tenants, (std::set<std::string>{"alice", "bob"}));
  EXPECT_EQ(owners.at(damaged).bytes, 0);
  EXPECT_EQ(owners.at(overflowing).bytes, 0);
  EXPECT_EQ(owners.at(overflowing).tenants, std::set<std::string>{"alice"});
}

TEST(DiskArchiveTest, RefusesNamesThatAreNotContentIds) {
  ScopedTempDir dir;
  auto archive = OpenArchive(dir.path());
  EXPECT_THAT(archive->Put(DiskArchive::Kind::kVolume, "../escape", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(archive->Get(DiskArchive::Kind::kVolume, "../escape").status(),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace drr::server
