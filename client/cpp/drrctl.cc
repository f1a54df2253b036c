// drrctl: command-line client of drrserve.
//
//   drrctl upload FILE.nii.gz            prints the volume id
//   drrctl render VOLUME_ID|FILE -o NAME  writes NAME.png and NAME.npy
//   drrctl list                          prints the stored volumes
//
// Pose and camera flags are named after nanodrr's parameters; their defaults
// are the reference camera of design.md §8.
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cpp/drr_client.h"
#include "common/cli.h"
#include "common/status_macros.h"
#include "io/image_files.h"
#include "io/nifti.h"

namespace drr::client {
namespace {

constexpr char kUsage[] =
    "usage: drrctl upload FILE.nii.gz [--server HOST:PORT]\n"
    "       drrctl render VOLUME_ID|FILE.nii.gz -o NAME [options]\n"
    "       drrctl list [--server HOST:PORT]\n";

void DeclareFlags(CommandLine& cli) {
  cli.Add("server", 1, "127.0.0.1:50051", "drrserve address");
  cli.Add("output", 1, "drr", "render: write OUTPUT.png and OUTPUT.npy");
  cli.Alias('o', "output");
  cli.Add("rotation", 3, "0 0 0", "render: ZXY Euler angles RZ RX RY, degrees");
  cli.Add("translation", 3, "0 850 0",
          "render: camera centre TX TY TZ from the isocenter, mm");
  cli.Add("orientation", 1, "AP", "render: AP, PA or none");
  cli.Add("sdd", 1, "1020", "render: source-to-detector distance, mm");
  cli.Add("delx", 1, "2.0", "render: pixel spacing along x, mm");
  cli.Add("dely", 1, "2.0", "render: pixel spacing along y, mm");
  cli.Add("x0", 1, "0", "render: principal point offset along x, mm");
  cli.Add("y0", 1, "0", "render: principal point offset along y, mm");
  cli.Add("height", 1, "200", "render: image height, pixels");
  cli.Add("width", 1, "200", "render: image width, pixels");
  cli.Add("samples", 1, "500", "render: samples per ray");
  cli.Add("help", 0, "", "print this help");
}

bool IsFile(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

absl::StatusOr<std::string> UploadFile(DrrClient& client,
                                       const std::string& path) {
  DRR_ASSIGN_OR_RETURN(HostVolume volume, ReadNiftiFile(path));
  DRR_ASSIGN_OR_RETURN(v1::VolumeInfo info, client.Upload(volume));
  return info.volume_id();
}

absl::StatusOr<v1::Orientation> ParseOrientation(const std::string& text) {
  if (text == "AP") return v1::ORIENTATION_AP;
  if (text == "PA") return v1::ORIENTATION_PA;
  if (text == "none") return v1::ORIENTATION_NONE;
  return absl::InvalidArgumentError(
      absl::StrCat("--orientation must be AP, PA or none, not \"", text, "\""));
}

absl::StatusOr<v1::RenderRequest> RequestFromFlags(
    const CommandLine& cli, const std::string& volume_id) {
  v1::RenderRequest request;
  request.set_volume_id(volume_id);
  v1::EulerPose* pose = request.add_poses()->mutable_euler();
  pose->set_convention("ZXY");
  for (int i = 0; i < 3; ++i) {
    DRR_ASSIGN_OR_RETURN(double r, cli.Double("rotation", i));
    DRR_ASSIGN_OR_RETURN(double t, cli.Double("translation", i));
    pose->add_rotation(r);
    pose->add_translation(t);
  }
  DRR_ASSIGN_OR_RETURN(v1::Orientation orientation,
                       ParseOrientation(cli.Value("orientation")));
  pose->set_orientation(orientation);
  v1::Intrinsics* in = request.mutable_intrinsics();
  DRR_ASSIGN_OR_RETURN(double sdd, cli.Double("sdd"));
  DRR_ASSIGN_OR_RETURN(double delx, cli.Double("delx"));
  DRR_ASSIGN_OR_RETURN(double dely, cli.Double("dely"));
  DRR_ASSIGN_OR_RETURN(double x0, cli.Double("x0"));
  DRR_ASSIGN_OR_RETURN(double y0, cli.Double("y0"));
  DRR_ASSIGN_OR_RETURN(int height, cli.Int("height"));
  DRR_ASSIGN_OR_RETURN(int width, cli.Int("width"));
  DRR_ASSIGN_OR_RETURN(int samples, cli.Int("samples"));
  in->set_sdd(sdd);
  in->set_delx(delx);
  in->set_dely(dely);
  in->set_x0(x0);
  in->set_y0(y0);
  in->set_height(height);
  in->set_width(width);
  request.mutable_options()->set_n_samples(samples);
  return request;
}

absl::Status Render(const CommandLine& cli, DrrClient& client,
                    const std::string& source) {
  std::string volume_id = source;
  if (IsFile(source)) {
    DRR_ASSIGN_OR_RETURN(volume_id, UploadFile(client, source));
  }
  DRR_ASSIGN_OR_RETURN(v1::RenderRequest request,
                       RequestFromFlags(cli, volume_id));
  DRR_ASSIGN_OR_RETURN(Images images, client.Render(request));
  const std::string name = cli.Value("output");
  DRR_RETURN_IF_ERROR(
      WriteNpy(name + ".npy", images.data.data(), images.height, images.width));
  DRR_RETURN_IF_ERROR(
      WritePng(name + ".png", images.data.data(), images.height, images.width));
  std::printf("%s.png %s.npy (%dx%d) from volume %s\n", name.c_str(),
              name.c_str(), images.height, images.width, volume_id.c_str());
  return absl::OkStatus();
}

absl::Status List(DrrClient& client) {
  DRR_ASSIGN_OR_RETURN(std::vector<v1::VolumeInfo> volumes, client.List());
  for (const v1::VolumeInfo& v : volumes) {
    std::printf("%s  shape %s  %lld bytes\n", v.volume_id().c_str(),
                absl::StrJoin(v.header().shape(), "x").c_str(),
                static_cast<long long>(v.voxel_bytes()));
  }
  return absl::OkStatus();
}

absl::Status Run(const CommandLine& cli) {
  const std::vector<std::string>& args = cli.positional();
  DrrClient client(cli.Value("server"));
  if (args.size() == 2 && args[0] == "upload") {
    DRR_ASSIGN_OR_RETURN(std::string id, UploadFile(client, args[1]));
    std::printf("%s\n", id.c_str());
    return absl::OkStatus();
  }
  if (args.size() == 2 && args[0] == "render")
    return Render(cli, client, args[1]);
  if (args.size() == 1 && args[0] == "list") return List(client);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown command \"", absl::StrJoin(args, " "), "\"\n", kUsage));
}

}  // namespace
}  // namespace drr::client

int main(int argc, char** argv) {
  drr::CommandLine cli;
  drr::client::DeclareFlags(cli);
  absl::Status status =
      cli.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (status.ok() && cli.Given("help")) {
    std::printf("%s\noptions:\n%s", drr::client::kUsage, cli.Usage().c_str());
    return 0;
  }
  if (status.ok()) status = drr::client::Run(cli);
  if (!status.ok()) {
    std::fprintf(stderr, "drrctl: %s: %s\n",
                 absl::StatusCodeToString(status.code()).c_str(),
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
