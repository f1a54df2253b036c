// The drr.v1.Registrations gRPC service: registrations run next to the
// renderer, their iterations streamed back.
#pragma once

#include "drr/v1/registrations.grpc.pb.h"
#include "server/frontend/service_context.h"

namespace drr::server {

// Callback-API implementation of drr.v1.Registrations on the engines.
class RegistrationsService final : public v1::Registrations::CallbackService {
 public:
  // Registers volumes of `context.store` to targets of `context.targets`
  // for the tenants that own both; each registration holds one of its
  // tenant's streams and the drain gate until it ends.
  explicit RegistrationsService(ServiceContext context) : context_(context) {}

  grpc::ServerWriteReactor<v1::RegisterProgress>* Register(
      grpc::CallbackServerContext* context,
      const v1::RegisterRequest* request) override;

 private:
  ServiceContext context_;
};

}  // namespace drr::server
