#include "server/frontend/targets_service.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/frontend/grpc_status.h"

namespace drr::server {
namespace {

void ToProto(const Target& target, v1::TargetInfo* out) {
  out->set_target_id(target.id);
  out->set_height(target.height);
  out->set_width(target.width);
}

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context,
                                 const RequestTimer& timer,
                                 const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(timer.Done(status)));
  return reactor;
}

}  // namespace

absl::StatusOr<Caller> TargetsService::Admit(
    const grpc::CallbackServerContext& call) const {
  if (absl::Status open = context_.gate->Check(); !open.ok()) return open;
  return context_.Authenticate(call);
}

grpc::ServerUnaryReactor* TargetsService::Upload(
    grpc::CallbackServerContext* context,
    const v1::UploadTargetRequest* request, v1::TargetInfo* response) {
  RequestTimer timer(context_.metrics, "UploadTarget");
  absl::StatusOr<Caller> caller = Admit(*context);
  if (!caller.ok()) return Finish(context, timer, caller.status());
  const std::string& bytes = request->pixels();
  if (bytes.size() % sizeof(float) != 0) {
    return Finish(
        context, timer,
        absl::InvalidArgumentError("pixels is not a whole number of float32s"));
  }
  if (absl::Status room = context_.quotas->CheckStore(
          *caller, static_cast<int64_t>(bytes.size()));
      !room.ok()) {
    return Finish(context, timer, room);
  }
  std::vector<float> pixels(bytes.size() / sizeof(float));
  std::memcpy(pixels.data(), bytes.data(), bytes.size());
  absl::StatusOr<std::shared_ptr<const Target>> target =
      context_.targets->Insert(request->height(), request->width(),
                               std::move(pixels));
  absl::Status status = target.status();
  if (status.ok()) {
    status = context_.owners->Grant(
        Ownership::Kind::kTarget, (*target)->id, caller->tenant,
        static_cast<int64_t>((*target)->pixels.size() * sizeof(float)));
  }
  if (status.ok()) ToProto(**target, response);
  return Finish(context, timer, status);
}

grpc::ServerUnaryReactor* TargetsService::Get(
    grpc::CallbackServerContext* context, const v1::GetTargetRequest* request,
    v1::TargetInfo* response) {
  RequestTimer timer(context_.metrics, "GetTarget");
  absl::StatusOr<Caller> caller = Admit(*context);
  if (!caller.ok()) return Finish(context, timer, caller.status());
  if (absl::Status visible =
          context_.CheckTargetVisible(request->target_id(), *caller);
      !visible.ok()) {
    return Finish(context, timer, visible);
  }
  absl::StatusOr<std::shared_ptr<const Target>> target =
      context_.targets->Get(request->target_id());
  if (target.ok()) ToProto(**target, response);
  return Finish(context, timer, target.status());
}

grpc::ServerUnaryReactor* TargetsService::List(
    grpc::CallbackServerContext* context, const v1::ListTargetsRequest*,
    v1::ListTargetsResponse* response) {
  RequestTimer timer(context_.metrics, "ListTargets");
  absl::StatusOr<Caller> caller = Admit(*context);
  if (!caller.ok()) return Finish(context, timer, caller.status());
  for (const auto& target : context_.targets->List()) {
    if (context_.CheckTargetVisible(target->id, *caller).ok()) {
      ToProto(*target, response->add_targets());
    }
  }
  return Finish(context, timer, absl::OkStatus());
}

grpc::ServerUnaryReactor* TargetsService::Delete(
    grpc::CallbackServerContext* context,
    const v1::DeleteTargetRequest* request, v1::DeleteTargetResponse*) {
  RequestTimer timer(context_.metrics, "DeleteTarget");
  absl::StatusOr<Caller> caller = Admit(*context);
  if (!caller.ok()) return Finish(context, timer, caller.status());
  const std::string& id = request->target_id();
  absl::Status status = context_.CheckTargetVisible(id, *caller);
  if (status.ok()) {
    // The image goes once its last owner deletes it.
    absl::StatusOr<bool> last =
        context_.owners->Release(Ownership::Kind::kTarget, id, *caller);
    status = last.status();
    if (last.ok() && *last) status = context_.targets->Delete(id);
  }
  return Finish(context, timer, status);
}

}  // namespace drr::server
