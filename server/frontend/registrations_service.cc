#include "server/frontend/registrations_service.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

#include "server/engine/registration.h"
#include "server/frontend/grpc_status.h"
#include "server/frontend/proto_convert.h"

namespace drr::server {
namespace {

// Runs one registration and writes its progress: one write in flight at a
// time, the latest iteration when the client is ready for another (the
// result carries every iteration), then the result. The reactor is
// reference counted: gRPC holds one reference until OnDone, the running
// registration one until it ends; the last release deletes it.
class RegisterReactor final
    : public grpc::ServerWriteReactor<v1::RegisterProgress> {
 public:
  RegisterReactor(ServiceContext context, grpc::CallbackServerContext* call,
                  const v1::RegisterRequest& request)
      : context_(context),
        request_(request),
        timer_(context.metrics, "Register"),
        cancelled_(std::make_shared<std::atomic<bool>>(false)) {
    const absl::Status open = context_.gate->Enter();
    admitted_ = open.ok();
    absl::StatusOr<RegistrationSpec> spec = Admit(open, *call);
    if (!spec.ok()) {
      std::lock_guard<std::mutex> lock(mutex_);
      job_status_ = spec.status();
      AdvanceLocked();
      return;
    }
    RenderEngine& engine =
        context_.engines->at(context_.devices->Place(spec->call.volume_id));
    refs_ = 2;
    Registrar(&engine, context_.targets)
        .Start(
            *std::move(spec),
            [this](const RegistrationStep& step) { OnStep(step); },
            [this](absl::StatusOr<RegistrationOutcome> outcome) {
              OnOutcome(std::move(outcome));
            });
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      write_in_flight_ = false;
      if (!ok) {
        // The client is gone: the registration stops at its next iteration.
        broken_ = true;
        cancelled_->store(true);
      }
      AdvanceLocked();
    }
  }

  void OnCancel() override { cancelled_->store(true); }

  void OnDone() override {
    if (admitted_) context_.gate->Leave();
    Unref();
  }

 private:
  // The registration of the request once the gate, the caller's token and
  // quota, the routing header and the visibility of its volume and target
  // let it in.
  absl::StatusOr<RegistrationSpec> Admit(
      const absl::Status& open, const grpc::CallbackServerContext& call) {
    if (!open.ok()) return open;
    absl::StatusOr<Caller> caller = context_.Authenticate(call);
    if (!caller.ok()) return caller.status();
    absl::StatusOr<QuotaGate::Slot> slot =
        context_.quotas->Take(*caller, QuotaKind::kStreams);
    if (!slot.ok()) return slot.status();
    stream_slot_ = *std::move(slot);
    absl::StatusOr<RegistrationSpec> spec = FromProto(request_);
    if (!spec.ok()) return spec.status();
    if (absl::Status valid = ValidateRegistration(*spec, context_.limits);
        !valid.ok()) {
      return NamedForRegistration(valid);
    }
    const std::string& volume = spec->call.volume_id;
    if (absl::Status routed = context_.CheckRouted(RoutedVolume(call), volume);
        !routed.ok()) {
      return routed;
    }
    if (absl::Status visible = context_.CheckVolumeVisible(volume, *caller);
        !visible.ok()) {
      return visible;
    }
    if (absl::Status visible =
            context_.CheckTargetVisible(spec->call.loss()->target_id, *caller);
        !visible.ok()) {
      return visible;
    }
    spec->call.deadline = ClientDeadline(call);
    spec->call.cancelled = cancelled_;
    spec->call.scheduling.client = context_.FairnessKey(*caller, call.peer());
    return spec;
  }

  // An iteration: it replaces any still unwritten.
  void OnStep(const RegistrationStep& step) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (broken_) return;
    pending_.emplace();
    ToProto(step, request_, pending_->mutable_step());
    AdvanceLocked();
  }

  void OnOutcome(absl::StatusOr<RegistrationOutcome> outcome) {
    // (Converted before the lock: a long trajectory takes a while.)
    std::optional<v1::RegisterProgress> result;
    if (outcome.ok()) {
      result.emplace();
      ToProto(*outcome, request_, result->mutable_result());
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // (A start stepped out of range is named as the request names it.)
      job_status_ = NamedForRegistration(outcome.status());
      pending_.reset();  // the result holds every iteration
      result_ = std::move(result);
      AdvanceLocked();
    }
    Unref();
  }

  // Writes what is due: the latest iteration, then the result; finishes the
  // call once the registration has ended and its result is written.
  void AdvanceLocked() {
    if (write_in_flight_ || finished_) return;
    if (!broken_ && pending_) {
      written_ = *std::move(pending_);
      pending_.reset();
      write_in_flight_ = true;
      StartWrite(&written_);
      return;
    }
    if (!job_status_) return;
    if (!broken_ && result_) {
      written_ = *std::move(result_);
      result_.reset();
      write_in_flight_ = true;
      StartWrite(&written_);
      return;
    }
    finished_ = true;
    absl::Status status = *job_status_;
    if (broken_) status = absl::CancelledError("the client went away");
    // The tenant may start another as soon as it hears this one end.
    stream_slot_ = QuotaGate::Slot();
    Finish(ToGrpcStatus(timer_.Done(status)));
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
  const v1::RegisterRequest request_;
  RequestTimer timer_;
  const std::shared_ptr<std::atomic<bool>> cancelled_;
  bool admitted_ = false;
  QuotaGate::Slot stream_slot_;
  std::mutex mutex_;
  int refs_ = 1;
  // The latest iteration not yet written, and the result once there is one.
  std::optional<v1::RegisterProgress> pending_;
  std::optional<v1::RegisterProgress> result_;
  // The message being written (gRPC holds a pointer until OnWriteDone).
  v1::RegisterProgress written_;
  // How the registration ended, once it has (or why it never started).
  std::optional<absl::Status> job_status_;
  bool write_in_flight_ = false;
  bool broken_ = false;
  bool finished_ = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::RegisterProgress>* RegistrationsService::Register(
    grpc::CallbackServerContext* context, const v1::RegisterRequest* request) {
  return new RegisterReactor(context_, context, *request);
}

}  // namespace drr::server
