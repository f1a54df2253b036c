// drr_load: a load generator for a running drrserve (see docs/benchmarks.md).
//
//   drr_load --clients N     N closed-loop unary Render clients
//   drr_load --rate R        open loop: R requests/s in all, Poisson arrivals
//   drr_load --streams N     N RenderStream clients of --stream-fps frames/s
//
// Each client (and each stream) has its own channel and connection. Every
// request renders fresh poses (small random rotations about nanodrr's
// reference pose), so nothing can be cached. Requests answered within the
// --duration seconds after --warmup are counted; the program prints the
// throughput, the latency percentiles, the per-client counts and the errors
// by gRPC code, and with --json writes them to a file.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cpp/drr_client.h"
#include "defaults/defaults.h"
#include "io/phantom.h"
#include "io/volume_file.h"
#include "status/status_macros.h"

namespace drr::load {
namespace {

using Clock = std::chrono::steady_clock;

// How long to wait for the server before giving up, and how long calls may
// go on after the measured window (their answers are not counted; a margin,
// so that no deadline expires inside the window).
constexpr auto kConnectTimeout = std::chrono::seconds(5);
constexpr auto kDrainTimeout = std::chrono::seconds(1);

// The command-line flags.
struct Flags {
  std::string target = "127.0.0.1:50051";
  std::string volume_file;
  std::string volume_id;
  int height = 64;
  int width = 64;
  int samples = 100;
  int poses = 1;
  std::string kind = "render";
  int clients = 0;
  double rate = 0;
  std::string arrivals = "poisson";
  int streams = 0;
  double stream_fps = 30;
  std::string stream_mode = "ordered";
  std::optional<uint64_t> frame_deadline_us;
  double duration = 10;
  double warmup = 1;
  double max_rotation = 5;
  uint64_t seed = 1;
  std::string json;
  std::string label;
};

// Which of the three kinds of load runs.
enum class Mode { kClosed, kOpen, kStream };

// The measured window: requests answered in [from, end) are counted.
struct Window {
  Clock::time_point from;
  Clock::time_point end;

  bool Counts(Clock::time_point t) const { return t >= from && t < end; }
};

// What one client (a closed-loop thread, the open-loop sender, one stream)
// saw in the measured window. Owned by one thread at a time.
struct ClientStats {
  // Latency of each OK answer, ms.
  std::vector<double> latencies_ms;
  // Requests (frames) sent (scheduled, in open loops) in the window.
  int64_t sent = 0;
  // Non-OK answers by gRPC code name.
  std::map<std::string, int64_t> errors;
};

// The summary of a run that is printed and written as JSON.
struct Report {
  // OK answers (requests or frames) and requests sent, in the window.
  int64_t requests = 0;
  int64_t sent = 0;
  // OK answers per second, and poses rendered per second.
  double requests_per_s = 0;
  double renders_per_s = 0;
  // Latencies of all OK answers, ascending.
  std::vector<double> sorted_latencies_ms;
  // OK answers of each client, and the smallest over their mean.
  std::vector<int64_t> per_client;
  double fairness = 0;
  // Non-OK answers by gRPC code name.
  std::map<std::string, int64_t> errors;
  // OK frames answered later than --frame-deadline-us after they were
  // scheduled (an upper bound on those the server answered late: the
  // deadline counts from the server's receipt, later than that).
  int64_t late_ok = 0;
};

// The canonical name of a gRPC status code, e.g. "DEADLINE_EXCEEDED".
std::string CodeName(int code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// Milliseconds from `from` to `to`.
double Ms(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// `t` seconds as a steady_clock duration.
Clock::duration Seconds(double t) {
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(t));
}

// The system_clock time (which gRPC deadlines take) of steady time `t`.
std::chrono::system_clock::time_point GrpcDeadline(Clock::time_point t) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             t - Clock::now());
}

// Records one answer: its latency when OK, its code otherwise; answers
// outside the window are not counted.
void Record(const Window& window, Clock::time_point start, int code,
            ClientStats* stats) {
  const Clock::time_point now = Clock::now();
  if (!window.Counts(now)) return;
  if (code == 0) {
    stats->latencies_ms.push_back(Ms(start, now));
  } else {
    ++stats->errors[CodeName(code)];
  }
}

// A channel of its own (a local subchannel pool, so no connection is shared
// with another client's channel).
std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

// OK once a connection to `target` is up, UNAVAILABLE after kConnectTimeout.
absl::Status CheckConnects(const std::string& target) {
  if (OwnChannel(target)->WaitForConnected(
          GrpcDeadline(Clock::now() + kConnectTimeout))) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat("cannot connect to ", target, " within ",
                   std::chrono::seconds(kConnectTimeout).count(), " s"));
}

// The id of the volume to render: --volume-id (checked to exist), else the
// --volume file or the built-in phantom, uploaded.
absl::StatusOr<std::string> PrepareVolume(client::DrrClient& client,
                                          const Flags& flags) {
  if (!flags.volume_id.empty()) {
    DRR_ASSIGN_OR_RETURN(v1::VolumeInfo info, client.Get(flags.volume_id));
    return info.volume_id();
  }
  HostVolume volume;
  if (flags.volume_file.empty()) {
    volume = MakeThoraxPhantom();
  } else {
    DRR_ASSIGN_OR_RETURN(volume, ReadVolumeFile(flags.volume_file));
  }
  DRR_ASSIGN_OR_RETURN(v1::VolumeInfo info, client.Upload(volume));
  return info.volume_id();
}

// Sets `pose` to ZXY Euler angles `rotation` (degrees) at nanodrr's reference
// translation (0, 850, 0) mm, AP.
void SetPose(const double (&rotation)[3], v1::Pose* pose) {
  v1::ParameterizedPose* p = pose->mutable_parameterized();
  p->set_parameterization(v1::PARAMETERIZATION_EULER);
  p->set_convention("ZXY");
  p->clear_rotation();
  p->clear_translation();
  for (double r : rotation) p->add_rotation(r);
  for (double t : {0.0, 850.0, 0.0}) p->add_translation(t);
}

// The request every client sends, without poses: volume, image size,
// samples, and (--kind loss) an NCC loss against `target_id`.
v1::RenderRequest BaseRequest(const Flags& flags, const std::string& volume_id,
                              const std::string& target_id) {
  v1::RenderRequest request;
  request.set_volume_id(volume_id);
  // The reference camera given explicitly (defaults/defaults.h), so that
  // servers from before the API had defaults — the benchmarks' baseline
  // ed92efc — render the same thing.
  request.mutable_intrinsics()->set_sdd(defaults::kSdd);
  request.mutable_intrinsics()->set_delx(defaults::kDelx);
  request.mutable_intrinsics()->set_dely(defaults::kDely);
  request.mutable_intrinsics()->set_height(flags.height);
  request.mutable_intrinsics()->set_width(flags.width);
  request.mutable_options()->set_n_samples(flags.samples);
  if (!target_id.empty()) {
    request.mutable_loss()->set_target_id(target_id);
    request.mutable_loss()->set_kind(v1::LOSS_KIND_NCC);
  }
  return request;
}

// Renders the volume at a slightly moved pose and stores the image as the
// target of loss requests; returns its id.
absl::StatusOr<std::string> PrepareTarget(client::DrrClient& client,
                                          const Flags& flags,
                                          const std::string& volume_id) {
  v1::RenderRequest request = BaseRequest(flags, volume_id, "");
  SetPose({2.0, -1.0, 1.0}, request.add_poses());
  DRR_ASSIGN_OR_RETURN(client::Images images, client.Render(request));
  const size_t plane = static_cast<size_t>(images.height) * images.width;
  return client.UploadTarget(
      images.height, images.width,
      std::vector<float>(images.data.begin(), images.data.begin() + plane));
}

// Fresh random poses for each request of one client.
class PoseSource {
 public:
  PoseSource(const Flags& flags, uint64_t stream)
      : poses_(flags.poses),
        rotation_(-flags.max_rotation, flags.max_rotation),
        random_(flags.seed * 1000003 + stream) {}

  // Replaces the poses of `request` with new ones.
  void Fill(v1::RenderRequest* request) {
    request->clear_poses();
    for (int i = 0; i < poses_; ++i) {
      const double rotation[3] = {rotation_(random_), rotation_(random_),
                                  rotation_(random_)};
      SetPose(rotation, request->add_poses());
    }
  }

 private:
  int poses_;
  std::uniform_real_distribution<double> rotation_;
  std::mt19937_64 random_;
};

// One closed-loop client: sends the next request as soon as the last is
// answered, until the window ends.
void RunClosedClient(const Flags& flags, const v1::RenderRequest& base,
                     const Window& window, int index, ClientStats* stats) {
  std::unique_ptr<v1::Renderer::Stub> stub =
      v1::Renderer::NewStub(OwnChannel(flags.target));
  PoseSource poses(flags, index);
  v1::RenderRequest request = base;
  while (Clock::now() < window.end) {
    poses.Fill(&request);
    grpc::ClientContext context;
    context.set_deadline(GrpcDeadline(window.end + kDrainTimeout));
    v1::RenderResponse response;
    const Clock::time_point start = Clock::now();
    if (window.Counts(start)) ++stats->sent;
    const grpc::Status status = stub->Render(&context, request, &response);
    Record(window, start, status.error_code(), stats);
  }
}

// Runs --clients closed-loop clients, one thread each.
std::vector<ClientStats> RunClosed(const Flags& flags,
                                   const v1::RenderRequest& base,
                                   const Window& window) {
  std::vector<ClientStats> stats(flags.clients);
  std::vector<std::thread> threads;
  for (int i = 0; i < flags.clients; ++i) {
    threads.emplace_back(RunClosedClient, std::cref(flags), std::cref(base),
                         std::cref(window), i, &stats[i]);
  }
  for (std::thread& thread : threads) thread.join();
  return stats;
}

// The open-loop requests in flight, and what their answers gave.
class OpenLoopState {
 public:
  explicit OpenLoopState(const Window& window) : window_(window) {}

  // Counts one more request in flight, scheduled at `scheduled`.
  void Sent(Clock::time_point scheduled) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (window_.Counts(scheduled)) ++stats_.sent;
    ++in_flight_;
  }

  // Records the answer of a request scheduled at `scheduled`.
  void Answered(Clock::time_point scheduled, int code) {
    std::lock_guard<std::mutex> lock(mutex_);
    Record(window_, scheduled, code, &stats_);
    if (--in_flight_ == 0) drained_.notify_all();
  }

  // Waits until every request sent is answered; returns the stats.
  ClientStats Drain() {
    std::unique_lock<std::mutex> lock(mutex_);
    drained_.wait(lock, [this] { return in_flight_ == 0; });
    return stats_;
  }

 private:
  const Window& window_;
  std::mutex mutex_;
  std::condition_variable drained_;
  int64_t in_flight_ = 0;
  ClientStats stats_;
};

// One open-loop call: owns what the callback API needs until it completes.
struct OpenLoopCall {
  grpc::ClientContext context;
  v1::RenderRequest request;
  v1::RenderResponse response;
  Clock::time_point scheduled;
};

// The time between two open-loop sends: exponential (Poisson arrivals) or
// fixed at 1 / --rate.
class Arrivals {
 public:
  explicit Arrivals(const Flags& flags)
      : poisson_(flags.arrivals == "poisson"),
        rate_(flags.rate),
        gap_(flags.rate),
        random_(flags.seed) {}

  // The next gap, in seconds.
  double Next() { return poisson_ ? gap_(random_) : 1 / rate_; }

 private:
  bool poisson_;
  double rate_;
  std::exponential_distribution<double> gap_;
  std::mt19937_64 random_;
};

// Runs the open loop: one sender issues asynchronous calls on one channel at
// the scheduled times; latencies count from the scheduled time, so a sender
// that falls behind shows up in them.
std::vector<ClientStats> RunOpen(const Flags& flags,
                                 const v1::RenderRequest& base,
                                 const Window& window) {
  std::unique_ptr<v1::Renderer::Stub> stub =
      v1::Renderer::NewStub(OwnChannel(flags.target));
  PoseSource poses(flags, 0);
  Arrivals arrivals(flags);
  OpenLoopState state(window);
  Clock::time_point scheduled = Clock::now();
  while (scheduled < window.end) {
    std::this_thread::sleep_until(scheduled);
    auto* call = new OpenLoopCall;
    call->request = base;
    poses.Fill(&call->request);
    call->scheduled = scheduled;
    call->context.set_deadline(GrpcDeadline(window.end + kDrainTimeout));
    state.Sent(scheduled);
    stub->async()->Render(&call->context, &call->request, &call->response,
                          [call, &state](const grpc::Status& status) {
                            state.Answered(call->scheduled,
                                           status.error_code());
                            delete call;
                          });
    scheduled += Seconds(arrivals.Next());
  }
  return {state.Drain()};
}

// The scheduled send times of a stream's frames, by frame id, shared by its
// writer and its reader.
class FrameTimes {
 public:
  // Notes that frame `id` was scheduled at `t`.
  void Add(uint64_t id, Clock::time_point t) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (times_.size() <= id) times_.resize(id + 1);
    times_[id] = t;
  }

  // When frame `id` was scheduled.
  Clock::time_point Get(uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return id < times_.size() ? times_[id] : Clock::time_point();
  }

 private:
  std::mutex mutex_;
  std::vector<Clock::time_point> times_;
};

// Writes one stream's frames at --stream-fps until the window ends, then
// closes the sending side; returns how many were scheduled in the window.
int64_t WriteFrames(
    const Flags& flags, const v1::RenderRequest& base, const Window& window,
    int index,
    grpc::ClientReaderWriter<v1::RenderRequest, v1::RenderResponse>* stream,
    FrameTimes* times) {
  PoseSource poses(flags, index);
  v1::RenderRequest request = base;
  request.set_stream_mode(flags.stream_mode == "latest"
                              ? v1::STREAM_MODE_LATEST
                              : v1::STREAM_MODE_ORDERED);
  if (flags.frame_deadline_us) {
    request.set_frame_deadline_us(*flags.frame_deadline_us);
  }
  const Clock::duration interval = Seconds(1 / flags.stream_fps);
  int64_t in_window = 0;
  uint64_t id = 0;
  for (Clock::time_point scheduled = Clock::now(); scheduled < window.end;
       scheduled += interval, ++id) {
    std::this_thread::sleep_until(scheduled);
    poses.Fill(&request);
    request.set_frame_id(id);
    times->Add(id, scheduled);
    if (!stream->Write(request)) break;
    if (window.Counts(scheduled)) ++in_window;
  }
  stream->WritesDone();
  return in_window;
}

// One stream client: a writer thread sends frames while this thread reads
// the answers; a frame's latency counts from its scheduled time. The stream's
// deadline is kDrainTimeout after the window.
void RunStreamClient(const Flags& flags, const v1::RenderRequest& base,
                     const Window& window, int index, ClientStats* stats) {
  std::unique_ptr<v1::Renderer::Stub> stub =
      v1::Renderer::NewStub(OwnChannel(flags.target));
  grpc::ClientContext context;
  context.set_deadline(GrpcDeadline(window.end + kDrainTimeout));
  auto stream = stub->RenderStream(&context);
  FrameTimes times;
  std::thread writer([&] {
    stats->sent = WriteFrames(flags, base, window, index, stream.get(), &times);
  });
  v1::RenderResponse response;
  while (stream->Read(&response)) {
    Record(window, times.Get(response.frame_id()), response.status().code(),
           stats);
  }
  writer.join();
  const grpc::Status status = stream->Finish();
  // A stream that failed before the window ended is an error of its own.
  if (!status.ok() && Clock::now() < window.end) {
    ++stats->errors[CodeName(status.error_code())];
  }
}

// Runs --streams stream clients, one thread (and a writer thread) each.
std::vector<ClientStats> RunStreams(const Flags& flags,
                                    const v1::RenderRequest& base,
                                    const Window& window) {
  std::vector<ClientStats> stats(flags.streams);
  std::vector<std::thread> threads;
  for (int i = 0; i < flags.streams; ++i) {
    threads.emplace_back(RunStreamClient, std::cref(flags), std::cref(base),
                         std::cref(window), i, &stats[i]);
  }
  for (std::thread& thread : threads) thread.join();
  return stats;
}

// Merges the clients' stats into the summary of the run.
Report Summarize(const Flags& flags, const std::vector<ClientStats>& clients) {
  Report report;
  for (const ClientStats& c : clients) {
    const auto ok = static_cast<int64_t>(c.latencies_ms.size());
    report.per_client.push_back(ok);
    report.requests += ok;
    report.sent += c.sent;
    report.sorted_latencies_ms.insert(report.sorted_latencies_ms.end(),
                                      c.latencies_ms.begin(),
                                      c.latencies_ms.end());
    for (const auto& [code, count] : c.errors) report.errors[code] += count;
  }
  std::sort(report.sorted_latencies_ms.begin(),
            report.sorted_latencies_ms.end());
  report.requests_per_s = report.requests / flags.duration;
  report.renders_per_s = report.requests_per_s * flags.poses;
  const double mean =
      static_cast<double>(report.requests) / report.per_client.size();
  report.fairness = mean > 0 ? *std::min_element(report.per_client.begin(),
                                                 report.per_client.end()) /
                                   mean
                             : 0;
  if (flags.frame_deadline_us) {
    const double deadline_ms = *flags.frame_deadline_us / 1000.0;
    const std::vector<double>& l = report.sorted_latencies_ms;
    report.late_ok =
        l.end() - std::upper_bound(l.begin(), l.end(), deadline_ms);
  }
  return report;
}

// The nearest-rank `q` quantile of sorted values (0 when there are none).
double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

// `text` as a JSON string literal.
std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x",
                    static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The name of a mode, as the JSON and the report print it.
const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kClosed:
      return "closed";
    case Mode::kOpen:
      return "open";
    case Mode::kStream:
      return "stream";
  }
  return "";
}

// The N of a run: clients, requests/s offered, or streams.
double LoadLevel(const Flags& flags, Mode mode) {
  switch (mode) {
    case Mode::kClosed:
      return flags.clients;
    case Mode::kOpen:
      return flags.rate;
    case Mode::kStream:
      return flags.streams;
  }
  return 0;
}

// The run and its results as a JSON document.
std::string ToJson(const Flags& flags, Mode mode,
                   const std::string& command_line,
                   const std::string& volume_id, const Report& r) {
  const std::vector<double>& l = r.sorted_latencies_ms;
  std::vector<std::string> errors;
  for (const auto& [code, count] : r.errors) {
    errors.push_back(absl::StrCat(JsonString(code), ": ", count));
  }
  std::string json = absl::StrCat(
      "{\n  \"label\": ", JsonString(flags.label),
      ",\n  \"command_line\": ", JsonString(command_line),
      ",\n  \"mode\": ", JsonString(ModeName(mode)),
      ",\n  \"n\": ", LoadLevel(flags, mode),
      ",\n  \"target\": ", JsonString(flags.target),
      ",\n  \"volume_id\": ", JsonString(volume_id),
      ",\n  \"kind\": ", JsonString(flags.kind),
      ",\n  \"height\": ", flags.height, ",\n  \"width\": ", flags.width,
      ",\n  \"samples\": ", flags.samples, ",\n  \"poses\": ", flags.poses);
  if (mode == Mode::kStream) {
    absl::StrAppend(
        &json, ",\n  \"stream_mode\": ", JsonString(flags.stream_mode),
        ",\n  \"stream_fps\": ", flags.stream_fps,
        ",\n  \"frame_deadline_us\": ",
        flags.frame_deadline_us ? absl::StrCat(*flags.frame_deadline_us)
                                : "null",
        ",\n  \"late_ok\": ", r.late_ok);
  }
  if (mode == Mode::kOpen) {
    absl::StrAppend(&json, ",\n  \"arrivals\": ", JsonString(flags.arrivals));
  }
  absl::StrAppend(
      &json, ",\n  \"duration_s\": ", flags.duration,
      ",\n  \"warmup_s\": ", flags.warmup, ",\n  \"sent\": ", r.sent,
      ",\n  \"requests\": ", r.requests,
      ",\n  \"renders\": ", r.requests * flags.poses,
      ",\n  \"requests_per_s\": ", r.requests_per_s,
      ",\n  \"renders_per_s\": ", r.renders_per_s,
      ",\n  \"latency_ms\": {\"count\": ", l.size(),
      ", \"p50\": ", Quantile(l, 0.5), ", \"p90\": ", Quantile(l, 0.9),
      ", \"p99\": ", Quantile(l, 0.99), ", \"max\": ", Quantile(l, 1),
      "},\n  \"per_client\": [", absl::StrJoin(r.per_client, ", "),
      "],\n  \"fairness_min_over_mean\": ", r.fairness, ",\n  \"errors\": {",
      absl::StrJoin(errors, ", "), "}\n}\n");
  return json;
}

// Prints the results for a person.
void PrintReport(const Flags& flags, Mode mode, const Report& r) {
  const char* unit = mode == Mode::kStream ? "frames" : "requests";
  std::printf("mode %s, N = %g, %dx%d px, %d samples, %d pose(s), %s, %g s\n",
              ModeName(mode), LoadLevel(flags, mode), flags.height, flags.width,
              flags.samples, flags.poses, flags.kind.c_str(), flags.duration);
  std::printf("throughput: %.2f %s/s, %.2f renders/s (%lld OK of %lld sent)\n",
              r.requests_per_s, unit, r.renders_per_s,
              static_cast<long long>(r.requests),
              static_cast<long long>(r.sent));
  const std::vector<double>& l = r.sorted_latencies_ms;
  std::printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n",
              Quantile(l, 0.5), Quantile(l, 0.9), Quantile(l, 0.99),
              Quantile(l, 1));
  std::printf("per client: %s (min/mean %.3f)\n",
              absl::StrJoin(r.per_client, " ").c_str(), r.fairness);
  std::vector<std::string> errors;
  for (const auto& [code, count] : r.errors) {
    errors.push_back(absl::StrCat(code, " ", count));
  }
  std::printf("errors: %s\n",
              errors.empty() ? "none" : absl::StrJoin(errors, ", ").c_str());
  if (flags.frame_deadline_us) {
    std::printf("OK frames later than their deadline: %lld\n",
                static_cast<long long>(r.late_ok));
  }
}

// Writes `text` to the file at `path`.
absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat("cannot write ", path));
  }
  const bool written =
      std::fwrite(text.data(), 1, text.size(), file) == text.size();
  if (std::fclose(file) != 0 || !written) {
    return absl::DataLossError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

// Declares the flags on `app`.
void AddFlags(CLI::App& app, Flags& f) {
  app.add_option("--target", f.target, "drrserve address host:port")
      ->capture_default_str();
  CLI::Option* file = app.add_option("--volume", f.volume_file,
                                     "volume file (NIfTI, NRRD, MetaImage, "
                                     "DICOM series) to upload and render");
  app.add_option("--volume-id", f.volume_id, "a stored volume to render")
      ->excludes(file);
  app.add_option("--height", f.height, "image height, pixels")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--width", f.width, "image width, pixels")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--samples", f.samples, "samples per ray")
      ->capture_default_str();
  app.add_option("--poses", f.poses, "poses per request")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--kind", f.kind, "render images, or NCC loss and gradient")
      ->capture_default_str()
      ->check(CLI::IsMember({"render", "loss"}));
  CLI::Option* clients =
      app.add_option("--clients", f.clients,
                     "closed loop: N unary clients (the default, N = 1)")
          ->check(CLI::PositiveNumber);
  CLI::Option* rate =
      app.add_option("--rate", f.rate, "open loop: requests/s in all")
          ->check(CLI::PositiveNumber)
          ->excludes(clients);
  app.add_option("--arrivals", f.arrivals, "open-loop send times")
      ->capture_default_str()
      ->check(CLI::IsMember({"poisson", "fixed"}));
  app.add_option("--streams", f.streams, "N RenderStream clients")
      ->check(CLI::PositiveNumber)
      ->excludes(clients)
      ->excludes(rate);
  app.add_option("--stream-fps", f.stream_fps, "frames/s of each stream")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--stream-mode", f.stream_mode, "RenderStream mode")
      ->capture_default_str()
      ->check(CLI::IsMember({"ordered", "latest"}));
  app.add_option("--frame-deadline-us", f.frame_deadline_us,
                 "per-frame deadline, microseconds after receipt");
  app.add_option("--duration", f.duration, "measured seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", f.warmup, "seconds run before measuring")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-rotation", f.max_rotation,
                 "each Euler angle is uniform in +-this, degrees")
      ->capture_default_str();
  app.add_option("--seed", f.seed, "random seed of the poses")
      ->capture_default_str();
  app.add_option("--json", f.json, "also write the results to this file");
  app.add_option("--label", f.label,
                 "names the run in the JSON (e.g. the git commit)");
}

// The mode the flags ask for; closed loop with one client by default.
Mode ModeOf(Flags& flags) {
  if (flags.rate > 0) return Mode::kOpen;
  if (flags.streams > 0) return Mode::kStream;
  if (flags.clients == 0) flags.clients = 1;
  return Mode::kClosed;
}

// Prepares the server (volume, target), runs the load and reports it.
absl::Status RunLoad(const Flags& flags, Mode mode,
                     const std::string& command_line) {
  DRR_RETURN_IF_ERROR(CheckConnects(flags.target));
  client::DrrClient client(flags.target);
  DRR_ASSIGN_OR_RETURN(const std::string volume_id,
                       PrepareVolume(client, flags));
  std::string target_id;
  if (flags.kind == "loss") {
    DRR_ASSIGN_OR_RETURN(target_id, PrepareTarget(client, flags, volume_id));
  }
  const v1::RenderRequest base = BaseRequest(flags, volume_id, target_id);
  Window window;
  window.from = Clock::now() + Seconds(flags.warmup);
  window.end = window.from + Seconds(flags.duration);
  std::vector<ClientStats> stats;
  switch (mode) {
    case Mode::kClosed:
      stats = RunClosed(flags, base, window);
      break;
    case Mode::kOpen:
      stats = RunOpen(flags, base, window);
      break;
    case Mode::kStream:
      stats = RunStreams(flags, base, window);
      break;
  }
  const Report report = Summarize(flags, stats);
  PrintReport(flags, mode, report);
  if (flags.json.empty()) return absl::OkStatus();
  return WriteFile(flags.json,
                   ToJson(flags, mode, command_line, volume_id, report));
}

// Parses the flags and runs; 0 when the load ran, 1 when it could not.
int Run(int argc, char** argv) {
  CLI::App app{"drr_load: load generator for drrserve"};
  Flags flags;
  AddFlags(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const Mode mode = ModeOf(flags);
  const absl::Status status =
      RunLoad(flags, mode,
              absl::StrJoin(std::vector<std::string>(argv, argv + argc), " "));
  if (!status.ok()) {
    std::fprintf(stderr, "drr_load: %s: %s\n",
                 absl::StatusCodeToString(status.code()).c_str(),
                 std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace drr::load

int main(int argc, char** argv) { return drr::load::Run(argc, argv); }
