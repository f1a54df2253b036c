// The drr.v1.Targets gRPC service: target images for loss requests.
#pragma once

#include "drr/v1/targets.grpc.pb.h"
#include "server/frontend/service_context.h"

namespace drr::server {

// Callback-API implementation of drr.v1.Targets over the engine's store.
class TargetsService final : public v1::Targets::CallbackService {
 public:
  // Serves `context.targets` to the tenants that own them, recording in its
  // metrics; refuses calls once its gate is closed.
  explicit TargetsService(ServiceContext context) : context_(context) {}

  grpc::ServerUnaryReactor* Upload(grpc::CallbackServerContext* context,
                                   const v1::UploadTargetRequest* request,
                                   v1::TargetInfo* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const v1::GetTargetRequest* request,
                                v1::TargetInfo* response) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const v1::ListTargetsRequest* request,
                                 v1::ListTargetsResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteTargetRequest* request,
                                   v1::DeleteTargetResponse* response) override;

 private:
  // Who calls, once the gate has let the call in: the caller, or why not.
  absl::StatusOr<Caller> Admit(const grpc::CallbackServerContext& call) const;

  ServiceContext context_;
};

}  // namespace drr::server
