#include "server/frontend/volumes_service.h"

#include "absl/strings/str_cat.h"
#include "server/engine/volume_upload.h"
#include "server/frontend/grpc_status.h"
#include "server/frontend/proto_convert.h"
#include "status/status_macros.h"
#include "wire/volume_proto.h"

namespace drr::server {
namespace {

// Receives one upload stream. Nothing is stored unless the stream ends with a
// digest that matches; a client that goes away leaves nothing behind.
class UploadReactor final
    : public grpc::ServerReadReactor<v1::UploadVolumeChunk> {
 public:
  UploadReactor(ServiceContext context, grpc::CallbackServerContext* call,
                v1::VolumeInfo* response, std::function<void()> on_stored)
      : context_(context),
        response_(response),
        on_stored_(std::move(on_stored)),
        timer_(context.metrics, "Upload"),
        upload_(context_.limits, context_.archive) {
    const absl::Status open = context_.gate->Enter();
    admitted_ = open.ok();
    if (!admitted_) {
      Finish(ToGrpcStatus(timer_.Done(open)));
      return;
    }
    absl::StatusOr<Caller> caller = context_.Authenticate(*call);
    if (!caller.ok()) {
      Finish(ToGrpcStatus(timer_.Done(caller.status())));
      return;
    }
    caller_ = *std::move(caller);
    absl::StatusOr<QuotaGate::Slot> slot =
        context_.quotas->Take(caller_, QuotaKind::kUploads);
    if (!slot.ok()) {
      Finish(ToGrpcStatus(timer_.Done(slot.status())));
      return;
    }
    upload_slot_ = *std::move(slot);
    absl::StatusOr<std::shared_ptr<UploadTracker::Ticket>> ticket =
        context_.uploads->Begin(call);
    if (!ticket.ok()) {
      Finish(ToGrpcStatus(timer_.Done(ticket.status())));
      return;
    }
    ticket_ = *std::move(ticket);
    context_.metrics->AddActiveUploads(1);
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client half-closed or went away (or idled past the timeout and
      // was cancelled) before sending the digest.
      Complete(absl::InvalidArgumentError(
          "digest: the upload ended before its digest"));
      return;
    }
    ticket_->Touch();
    absl::Status status = Accept();
    if (!status.ok()) {
      Complete(status);
    } else if (!done_) {
      StartRead(&chunk_);
    }
    // Else an engine worker is storing the volume and completes the call.
  }

  // A call the drain gate let in leaves it once its response has gone out.
  void OnDone() override {
    if (ticket_ != nullptr) {
      ticket_->Close();
      context_.metrics->AddActiveUploads(-1);
    }
    if (admitted_) context_.gate->Leave();
    delete this;
  }

 private:
  // Takes the chunk just read; sets done_ once the digest has been handled
  // (and, when it matched, handed the volume to Store).
  absl::Status Accept() {
    switch (chunk_.part_case()) {
      case v1::UploadVolumeChunk::kHeader: {
        absl::StatusOr<VolumeHeader> header =
            VolumeHeaderFromProto(chunk_.header());
        if (!header.ok()) return header.status();
        // Refused at once, before any data, when it cannot be kept; its
        // sizes are only read once they are checked.
        DRR_RETURN_IF_ERROR(
            VolumeUpload::CheckHeader(*header, context_.limits));
        DRR_RETURN_IF_ERROR(context_.store->CheckRoomForAnother());
        DRR_RETURN_IF_ERROR(context_.quotas->CheckStore(
            caller_, header->voxel_bytes() + header->label_bytes()));
        DRR_RETURN_IF_ERROR(CheckMemoryFor(*header));
        return upload_.AcceptHeader(*header);
      }
      case v1::UploadVolumeChunk::kData:
        return upload_.AcceptData(chunk_.data());
      case v1::UploadVolumeChunk::kDigest:
        done_ = true;
        // No more chunks: storing it is the server's time, not idle time.
        ticket_->Close();
        Store(chunk_.digest());
        return absl::OkStatus();
      case v1::UploadVolumeChunk::PART_NOT_SET:
        break;
    }
    return absl::InvalidArgumentError(
        "an upload chunk sets none of header, data, digest");
  }

  // Without a data directory the upload's bytes are held in memory, from
  // the header on. With one they go to disk, but the volume must still fit
  // the budget once it is loaded to render: its bytes and the float32 μ
  // derived from them.
  absl::Status CheckMemoryFor(const VolumeHeader& header) {
    const int64_t uploaded = header.voxel_bytes() + header.label_bytes();
    if (context_.archive == nullptr) {
      DRR_ASSIGN_OR_RETURN(
          held_, context_.budget->Reserve(MemoryUse::kUploads, uploaded,
                                          "this upload"));
      return absl::OkStatus();
    }
    const int64_t to_render =
        uploaded + header.voxels() * int64_t{sizeof(float)};
    if (to_render > context_.budget->limit()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "rendering this volume needs at least ", to_render,
          " bytes of memory, over the server's --memory-budget of ",
          context_.budget->limit()));
    }
    return absl::OkStatus();
  }

  // Checks the digest and stores the volume on an engine worker (flushing it
  // to disk takes a while; gRPC's callback threads must not wait for it),
  // then completes the call there.
  void Store(std::string digest) {
    context_.engine->Post(
        [this, digest = std::move(digest)] { Complete(Stored(digest)); },
        [this] {
          Complete(absl::UnavailableError("the server is shutting down"));
        });
  }

  // Finishes the upload whose digest is `digest` and stores its volume.
  absl::Status Stored(const std::string& digest) {
    DRR_ASSIGN_OR_RETURN(FinishedUpload finished, upload_.Finish(digest));
    // The volume holds its own share of the budget from here on.
    held_.Release();
    const VolumeSummary& summary = finished.summary;
    if (finished.in_memory) {
      DRR_RETURN_IF_ERROR(
          context_.store->Insert(summary.id, *std::move(finished.in_memory))
              .status());
    } else {
      DRR_RETURN_IF_ERROR(context_.store->AdoptArchived(summary));
    }
    DRR_RETURN_IF_ERROR(context_.owners->Grant(
        Ownership::Kind::kVolume, summary.id, caller_.tenant,
        summary.header.voxel_bytes() + summary.header.label_bytes()));
    ToProto(summary, response_);
    context_.metrics->AddUploadBytes(summary.header.voxel_bytes() +
                                     summary.header.label_bytes());
    on_stored_();
    return absl::OkStatus();
  }

  void Complete(const absl::Status& status) {
    // The tenant may start another upload as soon as it hears of this one.
    upload_slot_ = QuotaGate::Slot();
    Finish(ToGrpcStatus(timer_.Done(status)));
  }

  ServiceContext context_;
  v1::VolumeInfo* response_;
  std::function<void()> on_stored_;
  RequestTimer timer_;
  VolumeUpload upload_;
  v1::UploadVolumeChunk chunk_;
  bool done_ = false;
  bool admitted_ = false;
  std::shared_ptr<UploadTracker::Ticket> ticket_;
  // Who uploads: the volume's owner once stored.
  Caller caller_;
  // The upload's place in its tenant's concurrent-uploads quota.
  QuotaGate::Slot upload_slot_;
  // The budget the upload's bytes take until the volume is stored (without
  // a data directory).
  MemoryHold held_;
};

}  // namespace

void VolumesService::PublishStoreSize() {
  context_.metrics->SetStoredVolumes(context_.store->size(),
                                     context_.store->resident_bytes());
}

grpc::ServerReadReactor<v1::UploadVolumeChunk>* VolumesService::Upload(
    grpc::CallbackServerContext* context, v1::VolumeInfo* response) {
  return new UploadReactor(context_, context, response,
                           [this] { PublishStoreSize(); });
}

grpc::ServerUnaryReactor* VolumesService::Get(
    grpc::CallbackServerContext* context, const v1::GetVolumeRequest* request,
    v1::VolumeInfo* response) {
  RequestTimer timer(context_.metrics, "Get");
  absl::Status status = context_.gate->Check();
  absl::StatusOr<Caller> caller = context_.Authenticate(*context);
  if (status.ok()) status = caller.status();
  if (status.ok()) {
    status = context_.CheckVolumeVisible(request->volume_id(), *caller);
  }
  if (status.ok()) {
    absl::StatusOr<VolumeSummary> volume =
        context_.store->Describe(request->volume_id());
    if (volume.ok()) ToProto(*volume, response);
    status = volume.status();
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(timer.Done(status)));
  return reactor;
}

grpc::ServerUnaryReactor* VolumesService::List(
    grpc::CallbackServerContext* context, const v1::ListVolumesRequest*,
    v1::ListVolumesResponse* response) {
  RequestTimer timer(context_.metrics, "List");
  absl::Status status = context_.gate->Check();
  absl::StatusOr<Caller> caller = context_.Authenticate(*context);
  if (status.ok()) status = caller.status();
  if (status.ok()) {
    for (const VolumeSummary& volume : context_.store->List()) {
      if (context_.CheckVolumeVisible(volume.id, *caller).ok()) {
        ToProto(volume, response->add_volumes());
      }
    }
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(timer.Done(status)));
  return reactor;
}

grpc::ServerUnaryReactor* VolumesService::Delete(
    grpc::CallbackServerContext* context,
    const v1::DeleteVolumeRequest* request, v1::DeleteVolumeResponse*) {
  RequestTimer timer(context_.metrics, "Delete");
  absl::Status status = context_.gate->Check();
  absl::StatusOr<Caller> caller = context_.Authenticate(*context);
  if (status.ok()) status = caller.status();
  const std::string& id = request->volume_id();
  if (status.ok()) status = context_.CheckVolumeVisible(id, *caller);
  if (status.ok()) {
    // The content goes once its last owner deletes it.
    absl::StatusOr<bool> last =
        context_.owners->Release(Ownership::Kind::kVolume, id, *caller);
    status = last.status();
    if (last.ok() && *last) status = context_.store->Delete(id);
  }
  if (status.ok()) PublishStoreSize();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(timer.Done(status)));
  return reactor;
}

}  // namespace drr::server
