#include "server/engine/disk_archive.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "io/phantom.h"
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
  const HostVolume volume = SmallVolume();
  const std::string bytes = VolumeFileBytes(volume);
  absl::StatusOr<HostVolume> back = VolumeFromFileBytes(bytes);
  ASSERT_THAT(back, IsOk());
  EXPECT_EQ(back->voxels, volume.voxels);
  EXPECT_EQ(back->labels, volume.labels);
  EXPECT_EQ(back->header.label_type, volume.header.label_type);
  EXPECT_EQ(back->header.affine.m[0][3], 7.5);
  EXPECT_EQ(ContentDigest(back->header, back->voxels, back->labels),
            ContentDigest(volume.header, volume.voxels, volume.labels));
  // Truncated or padded files are refused.
  EXPECT_FALSE(VolumeFromFileBytes(bytes.substr(0, bytes.size() - 1)).ok());
  EXPECT_FALSE(VolumeFromFileBytes(bytes + "x").ok());
  EXPECT_FALSE(VolumeFromFileBytes("DRRVOL1").ok());
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
  VolumeStore store(cpu.get(), 4, 256, archive.get());
  EXPECT_EQ(store.size(), 1);  // listed, not yet loaded
  EXPECT_EQ(store.resident_bytes(), 0);
  absl::StatusOr<std::shared_ptr<const StoredVolume>> loaded = store.Get(id);
  ASSERT_THAT(loaded, IsOk());
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
  EXPECT_THAT(store.Get(id).status(), StatusIs(absl::StatusCode::kNotFound));
  // Uploading it again stores a good copy.
  ASSERT_THAT(store.Insert(id, volume), IsOk());
  EXPECT_TRUE(fs::exists(dir.File("volumes/" + id)));
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
