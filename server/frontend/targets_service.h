// The drr.v1.Targets gRPC service: target images for loss requests.
#pragma once

#include "drr/v1/targets.grpc.pb.h"
#include "server/engine/target_store.h"
#include "server/frontend/drain_gate.h"
#include "server/frontend/metrics.h"

namespace drr::server {

// Callback-API implementation of drr.v1.Targets over the engine's store.
class TargetsService final : public v1::Targets::CallbackService {
 public:
  // Serves `store`, recording in `metrics`; refuses calls once `gate` is
  // closed.
  TargetsService(TargetStore* store, ServerMetrics* metrics,
                 const DrainGate* gate)
      : store_(store), metrics_(metrics), gate_(gate) {}

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
  TargetStore* store_;
  ServerMetrics* metrics_;
  const DrainGate* gate_;
};

}  // namespace drr::server
