// The drr.v1.Volumes gRPC service: uploads and metadata of stored volumes.
#pragma once

#include "drr/v1/volumes.grpc.pb.h"
#include "server/frontend/service_context.h"

namespace drr::server {

// Callback-API implementation of drr.v1.Volumes over the engine's store.
class VolumesService final : public v1::Volumes::CallbackService {
 public:
  explicit VolumesService(ServiceContext context) : context_(context) {}

  grpc::ServerReadReactor<v1::UploadVolumeChunk>* Upload(
      grpc::CallbackServerContext* context, v1::VolumeInfo* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const v1::GetVolumeRequest* request,
                                v1::VolumeInfo* response) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const v1::ListVolumesRequest* request,
                                 v1::ListVolumesResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const v1::DeleteVolumeRequest* request,
                                   v1::DeleteVolumeResponse* response) override;

 private:
  ServiceContext context_;
};

}  // namespace drr::server
