#include "serving/kv_handoff.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace serving {

uint64_t Fnv1a(const void* data, size_t bytes, uint64_t hash) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    hash ^= p[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

absl::StatusOr<std::vector<int32_t>> KvImport::WaitBlocks(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return blocks_.has_value() || !failed_.ok();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the decode engine allocated no KV blocks within ", absl::FormatDuration(timeout)));
  }
  if (!failed_.ok()) return failed_;
  return *blocks_;
}

void KvImport::Complete(SampledToken first, KvPages pages, uint64_t sent_checksum) {
  absl::MutexLock lock(&mu_);
  if (!failed_.ok() || arrival_.has_value() || taken_) return;
  arrival_ = Arrival{std::move(first), std::move(pages), sent_checksum};
  if (notify_) notify_();
}

void KvImport::Fail(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (!failed_.ok() || placed_.has_value()) return;
  failed_ = std::move(status);
  if (notify_) notify_();
}

absl::Status KvImport::WaitPlaced(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return placed_.has_value() || !failed_.ok();
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) {
    return absl::DeadlineExceededError("the decode engine did not place the KV pages in time");
  }
  if (placed_.has_value()) return *placed_;
  return failed_;
}

void KvImport::set_notify(std::function<void()> notify) {
  absl::MutexLock lock(&mu_);
  notify_ = std::move(notify);
}

void KvImport::SetBlocks(std::vector<int32_t> blocks) {
  absl::MutexLock lock(&mu_);
  blocks_ = std::move(blocks);
}

bool KvImport::has_blocks() const {
  absl::MutexLock lock(&mu_);
  return blocks_.has_value();
}

std::optional<absl::StatusOr<KvImport::Arrival>> KvImport::Take() {
  absl::MutexLock lock(&mu_);
  if (!failed_.ok()) return absl::StatusOr<Arrival>(failed_);
  if (!arrival_.has_value() || taken_) return std::nullopt;
  taken_ = true;
  Arrival out = std::move(*arrival_);
  arrival_.reset();
  return absl::StatusOr<Arrival>(std::move(out));
}

void KvImport::Placed(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (!status.ok() && failed_.ok()) failed_ = status;
  placed_ = std::move(status);
}

}  // namespace serving
