// A data directory for the fuzz targets that write files: created under
// $TMPDIR once per process and removed when the process exits.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "server/engine/disk_archive.h"

namespace drr::fuzz {

// A DiskArchive in a temporary directory, removed with it.
class TemporaryArchive {
 public:
  // Creates $TMPDIR/NAME-XXXXXX (or under /tmp) and opens the archive there.
  explicit TemporaryArchive(const std::string& name) {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr ? base : "/tmp") + "/" + name + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir_ = pattern;
    archive_ = *server::DiskArchive::Open(dir_);
  }
  ~TemporaryArchive() {
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
  }
  TemporaryArchive(const TemporaryArchive&) = delete;
  TemporaryArchive& operator=(const TemporaryArchive&) = delete;

  const server::DiskArchive& archive() const { return *archive_; }

  // Writes `bytes` as the file `name` of subdirectory `subdir`.
  void Write(const char* subdir, const std::string& name,
             std::string_view bytes) const {
    std::ofstream out(std::filesystem::path(dir_) / subdir / name,
                      std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

  // Removes every file of the archive's directories.
  void Clear() const {
    for (const char* subdir : {"volumes", "owners", "corrupt"}) {
      std::error_code error;
      for (const auto& entry : std::filesystem::directory_iterator(
               std::filesystem::path(dir_) / subdir, error)) {
        std::filesystem::remove(entry.path(), error);
      }
    }
  }

 private:
  std::string dir_;
  std::unique_ptr<server::DiskArchive> archive_;
};

// The process's one TemporaryArchive named `name` (the first call's name),
// removed at exit.
inline const TemporaryArchive& ProcessArchive(const std::string& name) {
  static const TemporaryArchive* const temporary = new TemporaryArchive(name);
  static const int cleanup = std::atexit([] { delete temporary; });
  (void)cleanup;
  return *temporary;
}

}  // namespace drr::fuzz
