// The drr.v1.Renderer gRPC service: unary and streamed rendering.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>

#include "drr/v1/renderer.grpc.pb.h"
#include "server/frontend/service_context.h"

namespace drr::server {

// Callback-API implementation of drr.v1.Renderer; rendering itself runs on
// the engine's workers, never on gRPC's callback threads.
class RendererService final : public v1::Renderer::CallbackService {
 public:
  explicit RendererService(ServiceContext context) : context_(context) {}

  grpc::ServerUnaryReactor* Render(grpc::CallbackServerContext* context,
                                   const v1::RenderRequest* request,
                                   v1::RenderResponse* response) override;
  grpc::ServerBidiReactor<v1::RenderRequest, v1::RenderResponse>* RenderStream(
      grpc::CallbackServerContext* context) override;

 private:
  ServiceContext context_;
};

// Renders one request through the engine and fills `response`; `done` gets
// the outcome on an engine worker (or at once for a malformed request).
// `deadline` is the client's, if it set one; `cancelled` (or nullptr) is set
// when the client gives up.
void RenderThroughEngine(
    const ServiceContext& context, const v1::RenderRequest& request,
    std::optional<std::chrono::steady_clock::time_point> deadline,
    std::shared_ptr<const std::atomic<bool>> cancelled,
    v1::RenderResponse* response, std::function<void(absl::Status)> done);

}  // namespace drr::server
