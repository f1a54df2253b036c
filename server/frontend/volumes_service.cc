#include "server/frontend/volumes_service.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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
        routed_(RoutedVolume(*call)),
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
    if (!routed_.has_value() && context_.require_volume_header) {
      // (The id an upload will have is the digest its client computed.)
      Finish(ToGrpcStatus(timer_.Done(VolumeHeaderMissing(
          "an upload carries the id its content will have"))));
      return;
    }
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

  // Reads until the client half-closes, also after the digest: a call
  // finished with the client's half-close unread is reset (RST_STREAM), and
  // through a proxy the reset can overtake the answer. An upload that fails
  // is answered at once instead (the reset then stops the client sending).
  void OnReadDone(bool ok) override {
    if (!ok) {
      // The client half-closed, went away, or idled past the timeout.
      ticket_->Close();
      absl::ReleasableMutexLock lock(&mutex_);
      reading_ = false;
      if (!digest_taken_) {
        FailLocked(absl::InvalidArgumentError(
            "digest: the upload ended before its digest"));
      }
      FinishIfDone(lock);
      return;
    }
    ticket_->Touch();
    absl::Status status =
        absl::InvalidArgumentError("the upload sent a chunk after its digest");
    if (!DigestTaken()) status = Accept();
    if (status.ok() && chunk_.has_digest()) {
      status = context_.CheckRouted(routed_, chunk_.digest());
    }
    std::optional<std::string> digest;
    {
      absl::ReleasableMutexLock lock(&mutex_);
      if (!status.ok()) {
        FailLocked(status);
        reading_ = false;
        FinishIfDone(lock);
        return;
      }
      if (chunk_.has_digest()) {
        digest = chunk_.digest();
        digest_taken_ = true;
        storing_ = true;
      }
    }
    StartRead(&chunk_);  // the next chunk, or the half-close
    // (Posted without the lock: a stopping engine calls StoreDone at once.)
    if (digest) Store(*std::move(digest));  // a worker stores it: StoreDone
  }

  bool DigestTaken() {
    absl::MutexLock lock(&mutex_);
    return digest_taken_;
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
  // Takes the chunk just read (the digest is OnReadDone's to store).
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
        return absl::OkStatus();  // OnReadDone stores it
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
  // then answers the call there, or when the client half-closes.
  void Store(std::string digest) {
    // On a worker of the device the volume is placed on.
    RenderEngine& engine = context_.engines->For(digest);
    engine.Post(
        [this, digest = std::move(digest)] { StoreDone(Stored(digest)); },
        [this] {
          StoreDone(absl::UnavailableError("the server is shutting down"));
        });
  }

  void StoreDone(const absl::Status& status) {
    absl::ReleasableMutexLock lock(&mutex_);
    storing_ = false;
    stored_ = status;
    if (!status.ok()) upload_slot_ = QuotaGate::Slot();
    FinishIfDone(lock);
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

  // Records what went wrong with the stream (the first thing only): the
  // call's answer, whatever storing gives. An upload that fails holds no
  // quota or budget from here on.
  void FailLocked(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    if (failed_.has_value()) return;
    failed_ = status;
    upload_slot_ = QuotaGate::Slot();
    if (!storing_) held_.Release();  // (else the store releases it)
  }

  // Finishes the call once its answer is decided, the volume is no longer
  // being stored, and reading is over; `lock` holds mutex_ and is released
  // first. The caller must not touch the reactor afterwards: once finished,
  // OnDone may delete it on another thread.
  void FinishIfDone(absl::ReleasableMutexLock& lock) {
    if (storing_ || reading_ || finished_) return;
    if (!failed_.has_value() && !stored_.has_value()) return;
    finished_ = true;
    // The tenant may start another upload as soon as it hears of this one.
    upload_slot_ = QuotaGate::Slot();
    const absl::Status answer = failed_.value_or(*stored_);
    lock.Release();
    Finish(ToGrpcStatus(timer_.Done(answer)));
  }

  ServiceContext context_;
  v1::VolumeInfo* response_;
  std::function<void()> on_stored_;
  RequestTimer timer_;
  // The volume the upload was routed by: its digest must name it.
  const std::optional<std::string> routed_;
  VolumeUpload upload_;
  v1::UploadVolumeChunk chunk_;
  bool admitted_ = false;
  absl::Mutex mutex_;
  // What went wrong with the stream, if anything: the call's answer.
  std::optional<absl::Status> failed_ ABSL_GUARDED_BY(mutex_);
  // The outcome of storing the volume: the answer when nothing failed.
  std::optional<absl::Status> stored_ ABSL_GUARDED_BY(mutex_);
  // The digest came (no chunk may follow it).
  bool digest_taken_ ABSL_GUARDED_BY(mutex_) = false;
  // An engine worker is storing the volume.
  bool storing_ ABSL_GUARDED_BY(mutex_) = false;
  // A read is outstanding (until the client's half-close).
  bool reading_ ABSL_GUARDED_BY(mutex_) = true;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
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

grpc::ServerReadReactor<v1::UploadVolumeChunk>* VolumesService::Upload(
    grpc::CallbackServerContext* context, v1::VolumeInfo* response) {
  return new UploadReactor(context_, context, response,
                           [this] { context_.PublishStoreSize(); });
}

grpc::ServerUnaryReactor* VolumesService::Get(
    grpc::CallbackServerContext* context, const v1::GetVolumeRequest* request,
    v1::VolumeInfo* response) {
  RequestTimer timer(context_.metrics, "Get");
  absl::Status status = context_.gate->Check();
  absl::StatusOr<Caller> caller = context_.Authenticate(*context);
  if (status.ok()) status = caller.status();
  if (status.ok()) {
    status = context_.CheckRouted(RoutedVolume(*context), request->volume_id());
  }
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
  if (status.ok()) status = context_.CheckRouted(RoutedVolume(*context), id);
  if (status.ok()) status = context_.CheckVolumeVisible(id, *caller);
  if (status.ok()) {
    // The content goes once its last owner deletes it.
    absl::StatusOr<bool> last =
        context_.owners->Release(Ownership::Kind::kVolume, id, *caller);
    status = last.status();
    if (last.ok() && *last) status = context_.store->Delete(id);
  }
  if (status.ok()) context_.PublishStoreSize();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(timer.Done(status)));
  return reactor;
}

}  // namespace drr::server
