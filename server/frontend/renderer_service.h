// The drr.v1.Renderer gRPC service: unary and streamed rendering.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

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

// Who waits for a render, and for how long.
struct CallOrigin {
  // The engine's fairness key: the tenant when calls carry tokens, else
  // the gRPC peer.
  std::string client;
  // When the client stops waiting, if it said (the gRPC deadline, or a
  // stream frame's frame_deadline_us if earlier).
  std::optional<std::chrono::steady_clock::time_point> deadline;
  // Raised when the client gives up; may be nullptr.
  std::shared_ptr<const std::atomic<bool>> cancelled;
  // Non-zero for the frames of a LATEST stream: the stream's number.
  uint64_t latest_stream = 0;
  // Who calls: it must see the volume and any loss target.
  Caller caller;
  // The volume the call was routed by (x-drr-volume-id), if it says.
  std::optional<std::string> routed_volume;
};

// Renders one request through the engine and fills `response`; `done` gets
// the outcome on the engine's answer thread (or at once for a malformed
// request or a full queue).
void RenderThroughEngine(const ServiceContext& context,
                         const v1::RenderRequest& request, CallOrigin origin,
                         v1::RenderResponse* response,
                         std::function<void(absl::Status)> done);

}  // namespace drr::server
