#include "server/frontend/renderer_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <mutex>

#include "server/frontend/grpc_status.h"
#include "server/frontend/proto_convert.h"

namespace drr::server {
namespace {

// One frame of a stream: its response, filled when the engine answers.
struct Frame {
  v1::RenderResponse response;
  bool ready = false;
  // Let in by the drain gate: it leaves once its answer is written (or the
  // client has gone).
  bool admitted = false;
};

// Numbers the LATEST streams of this process.
std::atomic<uint64_t> latest_streams{0};

// Answers a RenderStream: every frame in order, with its frame id, a bad
// frame's error in that frame. The first frame sets the mode: ORDERED renders
// every frame; LATEST lets a newer frame supersede older ones still waiting
// (answered ABORTED by the engine). A frame with frame_deadline_us not done
// by then is answered DEADLINE_EXCEEDED. At most limits.max_frames_in_flight
// frames are outstanding; beyond that the stream is not read (backpressure).
// The reactor is reference counted: gRPC holds one reference until OnDone,
// each frame in the engine holds one, and the last release deletes it.
class RenderStreamReactor final
    : public grpc::ServerBidiReactor<v1::RenderRequest, v1::RenderResponse> {
 public:
  RenderStreamReactor(ServiceContext context,
                      const grpc::CallbackServerContext& call)
      : context_(context),
        call_(call),
        stream_timer_(context.metrics, "RenderStream"),
        caller_(context.Authenticate(call)),
        client_(caller_.ok() ? context.FairnessKey(*caller_, call.peer())
                             : call.peer()),
        deadline_(ClientDeadline(call)),
        routed_(RoutedVolume(call)),
        cancelled_(std::make_shared<std::atomic<bool>>(false)) {
    context_.metrics->AddActiveStreams(1);
    admission_ = caller_.status();
    if (caller_.ok()) {
      absl::StatusOr<QuotaGate::Slot> slot =
          context_.quotas->Take(*caller_, QuotaKind::kStreams);
      admission_ = slot.status();
      if (slot.ok()) stream_slot_ = *std::move(slot);
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    const auto received = std::chrono::steady_clock::now();
    if (!ok) {
      std::lock_guard<std::mutex> lock(mutex_);
      reading_done_ = true;
      AdvanceLocked();
      return;
    }
    // Held until this frame is submitted: once the lock below is released,
    // OnWriteDone may start the next read, and the next OnReadDone must not
    // submit its frame first (a LATEST stream's newer frame supersedes the
    // older one by the order the engine receives them).
    std::unique_lock<std::mutex> submitting(submit_mutex_);
    // Taken out first, for the same reason: the next read goes to request_.
    const v1::RenderRequest request = std::move(request_);
    if (frames_read_++ == 0 &&
        request.stream_mode() == v1::STREAM_MODE_LATEST) {
      latest_stream_ = ++latest_streams;
    }
    auto frame = std::make_shared<Frame>();
    frame->response.set_frame_id(request.frame_id());
    const absl::Status open = context_.gate->Enter();
    frame->admitted = open.ok();
    bool read_more;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      frames_.push_back(frame);
      ++refs_;
      read_more = open.ok() && static_cast<int>(frames_.size()) <
                                   context_.limits.max_frames_in_flight;
      read_paused_ = open.ok() && !read_more;
      // Draining: this frame is refused and the stream ends after the frames
      // before it.
      if (!open.ok()) reading_done_ = drained_ = true;
    }
    auto timer =
        std::make_shared<RequestTimer>(context_.metrics, "RenderStream.frame");
    if (!open.ok()) {
      FrameDone(*frame, timer->Done(open));
      return;
    }
    // A stream without a valid token, or over its tenant's streams quota,
    // has each frame answered so; each frame counts against the rate quota.
    absl::Status admitted = admission_;
    if (admitted.ok()) {
      context_.metrics->CountTenantRequest(caller_->tenant);
      admitted = context_.quotas->Request(*caller_);
    }
    if (!admitted.ok()) {
      FrameDone(*frame, timer->Done(admitted));
      submitting.unlock();
      if (read_more) StartRead(&request_);
      return;
    }
    CallOrigin origin{client_,        deadline_, cancelled_,
                      latest_stream_, *caller_,  routed_};
    if (request.has_frame_deadline_us()) {
      const auto frame_deadline =
          received + std::chrono::microseconds(std::min<uint64_t>(
                         request.frame_deadline_us(), kLongestFrameDeadline));
      origin.deadline =
          std::min(deadline_.value_or(frame_deadline), frame_deadline);
    }
    RenderThroughEngine(context_, request, std::move(origin), &frame->response,
                        [this, frame, timer](const absl::Status& status) {
                          timer->Done(status);
                          FrameDone(*frame, status);
                        });
    submitting.unlock();
    if (read_more) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mutex_);
    write_in_flight_ = false;
    if (frames_.front()->admitted) context_.gate->Leave();
    frames_.pop_front();
    if (!ok) {
      // The client is gone: nothing more can be delivered. Answered frames
      // leave the gate now, the others when the engine answers them.
      broken_ = true;
      for (const auto& frame : frames_) {
        if (frame->ready && frame->admitted) context_.gate->Leave();
      }
      frames_.clear();
    }
    if (read_paused_ && !broken_ && !reading_done_) {
      read_paused_ = false;
      StartRead(&request_);
    }
    AdvanceLocked();
  }

  void OnCancel() override { cancelled_->store(true); }

  void OnDone() override {
    context_.metrics->AddActiveStreams(-1);
    Unref();
  }

 private:
  // A frame deadline beyond a day is taken as a day (no overflow).
  static constexpr uint64_t kLongestFrameDeadline = uint64_t{86400} * 1000000;

  void FrameDone(Frame& frame, const absl::Status& status) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      frame.response.mutable_status()->set_code(
          static_cast<int>(status.code()));
      frame.response.mutable_status()->set_message(
          std::string(status.message()));
      frame.ready = true;
      if (broken_ && frame.admitted) context_.gate->Leave();
      AdvanceLocked();
    }
    Unref();
  }

  // Writes the head frame when it is ready, or finishes the stream once the
  // client has stopped sending and every frame is answered.
  void AdvanceLocked() {
    if (write_in_flight_ || finished_) return;
    if (!broken_ && !frames_.empty()) {
      if (!frames_.front()->ready) return;
      write_in_flight_ = true;
      StartWrite(&frames_.front()->response);
      return;
    }
    if (broken_ || reading_done_) {
      finished_ = true;
      absl::Status status = absl::OkStatus();
      if (broken_ || cancelled_->load() || call_.IsCancelled()) {
        status = absl::CancelledError("the client went away");
      } else if (drained_) {
        status = context_.gate->Check();
      }
      // The tenant may open another stream as soon as it hears this one end.
      stream_slot_ = QuotaGate::Slot();
      Finish(ToGrpcStatus(stream_timer_.Done(status)));
    }
  }

  void Unref() {
    bool last;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  ServiceContext context_;
  // gRPC's context of the stream, valid until OnDone.
  const grpc::CallbackServerContext& call_;
  RequestTimer stream_timer_;
  // Who calls (authenticated once, from the stream's metadata).
  const absl::StatusOr<Caller> caller_;
  // Why the stream's frames are refused, if they are: no valid token, or its
  // tenant's streams quota; else its slot in that quota.
  absl::Status admission_;
  QuotaGate::Slot stream_slot_;
  const std::string client_;
  const std::optional<std::chrono::steady_clock::time_point> deadline_;
  // The volume the stream was routed by; every frame must name it.
  const std::optional<std::string> routed_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;
  // Serialises the OnReadDone calls, which overlap when OnWriteDone starts a
  // read while the previous OnReadDone is still submitting its frame.
  std::mutex submit_mutex_;
  // Read and written by OnReadDone, under submit_mutex_.
  v1::RenderRequest request_;
  int64_t frames_read_ = 0;
  uint64_t latest_stream_ = 0;
  std::mutex mutex_;
  std::deque<std::shared_ptr<Frame>> frames_;
  int refs_ = 1;
  bool reading_done_ = false;
  bool read_paused_ = false;
  bool write_in_flight_ = false;
  bool broken_ = false;
  // A frame was refused because the server drains.
  bool drained_ = false;
  bool finished_ = false;
};

// Answers a unary Render with the engine's status. When the client cancels
// (or its deadline passes), it raises the flag the engine checks before it
// renders a queued call.
// A call the drain gate let in leaves it once its response has gone out.
class RenderReactor final : public grpc::ServerUnaryReactor {
 public:
  // `gate` (or nullptr) is left when the call is done.
  explicit RenderReactor(DrainGate* gate)
      : gate_(gate), cancelled_(std::make_shared<std::atomic<bool>>(false)) {}

  // The flag OnCancel raises.
  std::shared_ptr<const std::atomic<bool>> cancelled() const {
    return cancelled_;
  }

  void OnCancel() override { cancelled_->store(true); }
  void OnDone() override {
    if (gate_ != nullptr) gate_->Leave();
    delete this;
  }

 private:
  DrainGate* const gate_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;
};

}  // namespace

void RenderThroughEngine(const ServiceContext& context,
                         const v1::RenderRequest& request, CallOrigin origin,
                         v1::RenderResponse* response,
                         std::function<void(absl::Status)> done) {
  response->set_frame_id(request.frame_id());
  absl::StatusOr<RenderCall> call = FromProto(request);
  if (!call.ok()) {
    done(call.status());
    return;
  }
  absl::Status visible =
      context.CheckRouted(origin.routed_volume, call->volume_id);
  if (visible.ok()) {
    visible = context.CheckVolumeVisible(call->volume_id, origin.caller);
  }
  if (visible.ok() && call->loss() != nullptr) {
    visible =
        context.CheckTargetVisible(call->loss()->target_id, origin.caller);
  }
  if (!visible.ok()) {
    done(visible);
    return;
  }
  call->deadline = origin.deadline;
  call->cancelled = std::move(origin.cancelled);
  call->scheduling.client = std::move(origin.client);
  call->scheduling.latest_stream = origin.latest_stream;
  ServerMetrics* metrics = context.metrics;
  // The engine of the device the volume is placed on.
  const int device = context.devices->Place(call->volume_id);
  RenderEngine* engine = &context.engines->at(device);
  DeviceMetrics* device_metrics = &metrics->device(device);
  engine->Submit(*std::move(call),
                 [metrics, device_metrics, engine, response,
                  done = std::move(done)](absl::StatusOr<RenderResult> result) {
                   device_metrics->SetQueueDepth(engine->queue_depth());
                   if (result.ok()) {
                     const auto start = std::chrono::steady_clock::now();
                     ToProto(*result, response);
                     metrics->RecordStages(
                         *result, std::chrono::duration<double>(
                                      std::chrono::steady_clock::now() - start)
                                      .count());
                     metrics->AddPosesRendered(result->batch);
                   }
                   done(result.status());
                 });
  device_metrics->SetQueueDepth(engine->queue_depth());
}

grpc::ServerUnaryReactor* RendererService::Render(
    grpc::CallbackServerContext* context, const v1::RenderRequest* request,
    v1::RenderResponse* response) {
  auto timer = std::make_shared<RequestTimer>(context_.metrics, "Render");
  const absl::Status open = context_.gate->Enter();
  auto* reactor = new RenderReactor(open.ok() ? context_.gate : nullptr);
  if (!open.ok()) {
    reactor->Finish(ToGrpcStatus(timer->Done(open)));
    return reactor;
  }
  absl::StatusOr<Caller> caller = context_.Authenticate(*context);
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(timer->Done(caller.status())));
    return reactor;
  }
  CallOrigin origin{context_.FairnessKey(*caller, context->peer()),
                    ClientDeadline(*context),
                    reactor->cancelled(),
                    0,
                    *std::move(caller),
                    RoutedVolume(*context)};
  RenderThroughEngine(context_, *request, std::move(origin), response,
                      [reactor, timer](const absl::Status& status) {
                        reactor->Finish(ToGrpcStatus(timer->Done(status)));
                      });
  return reactor;
}

grpc::ServerBidiReactor<v1::RenderRequest, v1::RenderResponse>*
RendererService::RenderStream(grpc::CallbackServerContext* context) {
  return new RenderStreamReactor(context_, *context);
}

}  // namespace drr::server
