#include "server/engine/call_queue.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"

namespace drr::server {
namespace {

// The answer of a LATEST-stream call that `by` superseded.
absl::Status Superseded(const QueuedCall& by) {
  return absl::AbortedError(
      absl::StrCat("superseded by frame ", by.call.scheduling.frame_id));
}

}  // namespace

bool SameLaunch(const LaunchKey& a, const LaunchKey& b) {
  const kernels::RenderSettings& s = a.settings;
  const kernels::RenderSettings& t = b.settings;
  return a.volume_id == b.volume_id &&
         a.attenuation.mu_water == b.attenuation.mu_water &&
         a.attenuation.mu_bone == b.attenuation.mu_bone &&
         a.attenuation.hu_bone == b.attenuation.hu_bone &&
         a.residency.storage == b.residency.storage &&
         a.residency.texture == b.residency.texture &&
         s.rays.height == t.rays.height && s.rays.width == t.rays.width &&
         s.rays.n_samples == t.rays.n_samples &&
         s.rays.sampling == t.rays.sampling &&
         s.rays.soft_labels == t.rays.soft_labels &&
         s.projector == t.projector && s.reduce == t.reduce &&
         s.sampler == t.sampler && s.channels == t.channels;
}

CallQueue::PriorityClass& CallQueue::ClassOf(const RenderCall& call) {
  return classes_[static_cast<int>(call.scheduling.priority)];
}

void CallQueue::ForgetIfIdle(PriorityClass& cls, const std::string& client) {
  auto it = cls.clients.find(client);
  if (it == cls.clients.end() || !it->second.empty()) return;
  cls.clients.erase(it);
  cls.turn.remove(client);
}

const QueuedCall* CallQueue::LaterOfStream(const QueuedCall& call) const {
  const std::string& client = call.call.scheduling.client;
  const uint64_t stream = call.call.scheduling.latest_stream;
  for (const PriorityClass& cls : classes_) {
    auto it = cls.clients.find(client);
    if (it == cls.clients.end()) continue;
    for (const QueuedCall& c : it->second) {
      if (c.call.scheduling.latest_stream == stream &&
          c.call.scheduling.arrival > call.call.scheduling.arrival) {
        return &c;
      }
    }
  }
  return nullptr;
}

void CallQueue::Supersede(const QueuedCall& newer,
                          std::vector<DroppedCall>* dropped) {
  const std::string& client = newer.call.scheduling.client;
  const uint64_t stream = newer.call.scheduling.latest_stream;
  for (PriorityClass& cls : classes_) {
    auto it = cls.clients.find(client);
    if (it == cls.clients.end()) continue;
    std::deque<QueuedCall>& calls = it->second;
    for (auto c = calls.begin(); c != calls.end();) {
      if (c->call.scheduling.latest_stream != stream) {
        ++c;
        continue;
      }
      dropped->push_back({std::move(*c), Superseded(newer)});
      c = calls.erase(c);
      --size_;
    }
    // The newer call's class keeps the client's turn for it.
    if (&cls != &ClassOf(newer.call)) ForgetIfIdle(cls, client);
  }
}

bool CallQueue::Push(QueuedCall* call, std::vector<DroppedCall>* dropped) {
  if (call->call.scheduling.latest_stream != 0) {
    // A later frame of its stream already waits: this one is superseded.
    if (const QueuedCall* later = LaterOfStream(*call)) {
      dropped->push_back({std::move(*call), Superseded(*later)});
      return true;
    }
    Supersede(*call, dropped);
  }
  // Calls nobody wants any more give their places up.
  if (size_ >= max_calls_) DropUnwanted(dropped);
  PriorityClass& cls = ClassOf(call->call);
  const std::string& client = call->call.scheduling.client;
  if (size_ >= max_calls_ && !call->call.scheduling.continuation) {
    ForgetIfIdle(cls, client);
    return false;
  }
  auto [it, added] = cls.clients.try_emplace(client);
  if (added) cls.turn.push_back(client);
  it->second.push_back(std::move(*call));
  ++size_;
  return true;
}

void CallQueue::DropUnwanted(std::vector<DroppedCall>* dropped) {
  const auto now = std::chrono::steady_clock::now();
  for (PriorityClass& cls : classes_) {
    std::vector<std::string> idle;
    for (auto& [client, calls] : cls.clients) {
      for (auto c = calls.begin(); c != calls.end();) {
        const double waited =
            std::chrono::duration<double>(now - c->enqueued).count();
        absl::Status wanted = StillWanted(
            c->call, absl::StrCat("after ", waited,
                                  " s in the render queue; it was not "
                                  "rendered"));
        if (wanted.ok()) {
          ++c;
          continue;
        }
        dropped->push_back({std::move(*c), std::move(wanted)});
        c = calls.erase(c);
        --size_;
      }
      if (calls.empty()) idle.push_back(client);
    }
    for (const std::string& client : idle) ForgetIfIdle(cls, client);
  }
}

int64_t QueuedCall::steps_per_ray() const {
  if (launch.settings.projector == kernels::Projector::kSiddon && volume) {
    const VolumeHeader& h = volume->header();
    return int64_t{h.width} + h.height + h.depth;
  }
  return launch.settings.rays.n_samples;
}

int64_t QueuedCall::ray_samples() const {
  const kernels::RaySettings& rays = launch.settings.rays;
  return int64_t{poses()} * rays.height * rays.width * steps_per_ray();
}

bool LaunchEstimate::EndsBy(
    int64_t ray_samples,
    std::optional<std::chrono::steady_clock::time_point> deadline) const {
  if (!deadline || seconds_per_ray_sample <= 0) return true;
  // In seconds, as doubles: no duration conversion to overflow.
  return seconds_per_ray_sample * static_cast<double>(ray_samples) <=
         std::chrono::duration<double>(*deadline - start).count();
}

std::vector<QueuedCall> CallQueue::TakeBatch(
    int max_poses, const LaunchEstimate& estimate,
    std::vector<DroppedCall>* dropped) {
  std::vector<QueuedCall> batch;
  for (PriorityClass& cls : classes_) {
    if (cls.turn.empty()) continue;
    const std::string client = cls.turn.front();
    cls.turn.pop_front();
    std::deque<QueuedCall>& calls = cls.clients[client];
    batch.push_back(std::move(calls.front()));
    calls.pop_front();
    --size_;
    if (calls.empty()) {
      cls.clients.erase(client);
    } else {
      cls.turn.push_back(client);
    }
    AddCompatible(max_poses, estimate, &batch, dropped);
    break;
  }
  return batch;
}

void CallQueue::AddCompatible(int max_poses, const LaunchEstimate& estimate,
                              std::vector<QueuedCall>* batch,
                              std::vector<DroppedCall>* dropped) {
  PriorityClass& cls = ClassOf(batch->front().call);
  // A copy: pushing into `batch` moves its calls.
  const LaunchKey key = batch->front().launch;
  int poses = 0;
  int64_t samples = 0;
  std::optional<std::chrono::steady_clock::time_point> earliest;
  // The earlier of two optional deadlines.
  auto earlier = [](auto a, auto b) {
    return !a ? b : !b ? a : std::min(a, b);
  };
  for (const QueuedCall& c : *batch) {
    poses += c.poses();
    samples += c.ray_samples();
    earliest = earlier(earliest, c.call.deadline);
  }
  bool added = true;
  while (added && poses < max_poses) {
    added = false;
    std::list<std::string> served;
    for (auto client = cls.turn.begin();
         client != cls.turn.end() && poses < max_poses;) {
      std::deque<QueuedCall>& calls = cls.clients[*client];
      QueuedCall& next = calls.front();  // a client's calls in order
      if (poses + next.poses() > max_poses || !SameLaunch(next.launch, key) ||
          !estimate.EndsBy(samples + next.ray_samples(),
                           earlier(earliest, next.call.deadline))) {
        ++client;
        continue;
      }
      // A newer frame of a LATEST stream replaces the batch's older one.
      const uint64_t stream = next.call.scheduling.latest_stream;
      auto older = std::find_if(batch->begin(), batch->end(), [&](auto& q) {
        return stream != 0 && q.call.scheduling.latest_stream == stream;
      });
      if (older != batch->end() &&
          older->call.scheduling.arrival > next.call.scheduling.arrival) {
        // The batch holds a later frame of its stream: it is superseded.
        dropped->push_back({std::move(next), Superseded(*older)});
        calls.pop_front();
        --size_;
        if (calls.empty()) {
          cls.clients.erase(*client);
          client = cls.turn.erase(client);
        } else {
          ++client;
        }
        continue;
      }
      if (older != batch->end()) {
        poses -= older->poses();
        samples -= older->ray_samples();
        dropped->push_back({std::move(*older), Superseded(next)});
        batch->erase(older);
      }
      poses += next.poses();
      samples += next.ray_samples();
      earliest = earlier(earliest, next.call.deadline);
      batch->push_back(std::move(next));
      calls.pop_front();
      --size_;
      added = true;
      if (calls.empty()) {
        cls.clients.erase(*client);
        client = cls.turn.erase(client);
      } else {
        auto next = std::next(client);
        served.splice(served.end(), cls.turn, client);
        client = next;
      }
    }
    cls.turn.splice(cls.turn.end(), served);
  }
}

std::vector<QueuedCall> CallQueue::TakeAll() {
  std::vector<QueuedCall> all;
  for (PriorityClass& cls : classes_) {
    for (auto& [client, calls] : cls.clients) {
      for (QueuedCall& c : calls) all.push_back(std::move(c));
    }
    cls.clients.clear();
    cls.turn.clear();
  }
  size_ = 0;
  return all;
}

}  // namespace drr::server
