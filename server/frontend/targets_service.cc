#include "server/frontend/targets_service.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/frontend/grpc_status.h"
#include "server/frontend/service_context.h"

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

grpc::ServerUnaryReactor* TargetsService::Upload(
    grpc::CallbackServerContext* context,
    const v1::UploadTargetRequest* request, v1::TargetInfo* response) {
  RequestTimer timer(metrics_, "UploadTarget");
  if (absl::Status open = gate_->Check(); !open.ok()) {
    return Finish(context, timer, open);
  }
  const std::string& bytes = request->pixels();
  if (bytes.size() % sizeof(float) != 0) {
    return Finish(
        context, timer,
        absl::InvalidArgumentError("pixels is not a whole number of float32s"));
  }
  std::vector<float> pixels(bytes.size() / sizeof(float));
  std::memcpy(pixels.data(), bytes.data(), bytes.size());
  absl::StatusOr<std::shared_ptr<const Target>> target =
      store_->Insert(request->height(), request->width(), std::move(pixels));
  if (target.ok()) ToProto(**target, response);
  return Finish(context, timer, target.status());
}

grpc::ServerUnaryReactor* TargetsService::Get(
    grpc::CallbackServerContext* context, const v1::GetTargetRequest* request,
    v1::TargetInfo* response) {
  RequestTimer timer(metrics_, "GetTarget");
  if (absl::Status open = gate_->Check(); !open.ok()) {
    return Finish(context, timer, open);
  }
  absl::StatusOr<std::shared_ptr<const Target>> target =
      store_->Get(request->target_id());
  if (target.ok()) ToProto(**target, response);
  return Finish(context, timer, target.status());
}

grpc::ServerUnaryReactor* TargetsService::List(
    grpc::CallbackServerContext* context, const v1::ListTargetsRequest*,
    v1::ListTargetsResponse* response) {
  RequestTimer timer(metrics_, "ListTargets");
  if (absl::Status open = gate_->Check(); !open.ok()) {
    return Finish(context, timer, open);
  }
  for (const auto& target : store_->List())
    ToProto(*target, response->add_targets());
  return Finish(context, timer, absl::OkStatus());
}

grpc::ServerUnaryReactor* TargetsService::Delete(
    grpc::CallbackServerContext* context,
    const v1::DeleteTargetRequest* request, v1::DeleteTargetResponse*) {
  RequestTimer timer(metrics_, "DeleteTarget");
  if (absl::Status open = gate_->Check(); !open.ok()) {
    return Finish(context, timer, open);
  }
  return Finish(context, timer, store_->Delete(request->target_id()));
}

}  // namespace drr::server
