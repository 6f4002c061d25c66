#include "worker/output.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cerrno>
#include <cstring>

#include "common/packed.h"
#include "common/payload.h"

namespace jobd {
namespace {
// First mapping of an output segment; it doubles from there. Sparse: only
// reserved ranges take memory. (Raw POSIX calls here, not Boost.Interprocess,
// because growing a mapping in place needs mremap.)
constexpr size_t kInitialCapacity = 64 << 20;
}  // namespace

TaskOutput::~TaskOutput() { Finish(); }

Status TaskOutput::Grow(size_t end) {
  if (end <= capacity_) return {};
  const size_t capacity = std::max({end, 2 * capacity_, kInitialCapacity});
  if (fd_ < 0) {
    fd_ = shm_open(("/" + name_).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0) return Status::Error("cannot create " + name_ + ": " + std::strerror(errno));
  }
  if (ftruncate(fd_, static_cast<off_t>(capacity)) != 0) {
    return Status::Error("cannot size " + name_ + ": " + std::strerror(errno));
  }
  void* base = base_ == nullptr
                   ? mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0)
                   : mremap(base_, capacity_, capacity, MREMAP_MAYMOVE);
  if (base == MAP_FAILED) return Status::Error("cannot map " + name_ + ": " + std::strerror(errno));
  base_ = static_cast<char*>(base);
  capacity_ = capacity;
  return {};
}

char* TaskOutput::Reserve(size_t capacity) {
  if (state_ == State::kDone) return nullptr;  // one result per item
  if (state_ == State::kShared) capacity = std::max(capacity, reserved_);  // never shrinks
  if ((capacity <= kInlineLimit || name_.empty()) && state_ != State::kShared) {
    state_ = State::kInline;
    inline_.resize(capacity);  // keeps what was written, like realloc
    return inline_.data();
  }
  Status grown = Grow(used_ + capacity);
  if (grown.ok()) {
    const int error = AllocateForWriting(fd_, base_, used_, capacity);
    if (error != 0) {
      grown = Status::Error(std::string("no room for it in shared memory: ") + std::strerror(error) +
                            " (is /dev/shm full?)");
    }
  }
  if (!grown.ok()) {
    Fail("cannot store a result of " + std::to_string(capacity) + " bytes: " + grown.message());
    return nullptr;
  }
  if (state_ == State::kInline) {  // moving up from inline: bring what was written
    std::memcpy(base_ + used_, inline_.data(), inline_.size());
    inline_.clear();
  }
  state_ = State::kShared;
  reserved_ = capacity;
  return base_ + used_;
}

void TaskOutput::Commit(size_t size) {
  if (state_ == State::kInline && size <= inline_.size()) {
    inline_.resize(size);
    outcome_.mutable_value()->set_data(std::move(inline_));
  } else if (state_ == State::kShared && size == 0) {
    outcome_.mutable_value()->set_data("");
  } else if (state_ == State::kShared && size <= reserved_) {
    committed_ = size;
    wire::SegmentRef* ref = outcome_.mutable_value()->mutable_ref();
    ref->set_segment(name_);
    ref->set_offset(used_);
    ref->set_length(size);
    used_ += size;
  } else if (state_ != State::kDone) {
    outcome_.set_error("the function committed " + std::to_string(size) +
                       " bytes without reserving that much");
  }
  inline_.clear();
  state_ = State::kDone;
}

void TaskOutput::Fail(std::string message) {
  if (state_ == State::kDone && outcome_.has_error()) return;  // keep the first reason
  used_ -= committed_;  // a result committed, then failed, gives its space back
  committed_ = 0;
  outcome_.set_error(std::move(message));
  state_ = State::kDone;
}

void TaskOutput::Set(std::string_view bytes) {
  if (char* space = Reserve(bytes.size())) {
    if (!bytes.empty()) std::memcpy(space, bytes.data(), bytes.size());
    Commit(bytes.size());
  }
}

Status TaskOutput::Adopt(const std::string& segment, uint64_t offset, uint64_t length) {
  if (fd_ < 0 && state_ == State::kEmpty && !name_.empty()) {
    const std::string from = "/dev/shm/" + segment, to = "/dev/shm/" + name_;
    if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
      fd_ = open(to.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
      struct stat st{};
      if (fd_ < 0 || fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) ||
          length > static_cast<uint64_t>(st.st_size) ||
          offset > static_cast<uint64_t>(st.st_size) - length) {
        Finish();
        RemoveSegment(name_);
        return Status::Error("the result segment " + segment + " does not hold " +
                             std::to_string(length) + " bytes at " + std::to_string(offset));
      }
      wire::SegmentRef* ref = outcome_.mutable_value()->mutable_ref();
      ref->set_segment(name_);
      ref->set_offset(offset);
      ref->set_length(length);
      used_ = offset + length;
      committed_ = length;
      state_ = State::kDone;
      return {};
    }
  }
  Result<Segment> opened = Segment::Open(segment);
  RemoveSegment(segment);  // ours to remove, whatever it holds
  if (!opened.ok()) return opened.status();
  Result<std::string_view> bytes = opened->Slice(offset, length);
  if (!bytes.ok()) return bytes.status();
  Set(*bytes);
  return {};
}

void TaskOutput::TakeOutcome(wire::TaskResult* result) {
  if (state_ != State::kDone) outcome_.set_error("the function returned no result");
  const bool inline_value = outcome_.has_value() && !outcome_.value().has_ref();
  if (inline_value && result->outcomes_size() == 0) {
    AppendPacked(result->mutable_values(), outcome_.value().data());
  } else {
    if (result->has_values()) {  // the values so far, one by one after all
      UnpackInto(result->mutable_values(), [&] { return result->add_outcomes()->mutable_value(); });
      result->clear_values();
    }
    result->add_outcomes()->Swap(&outcome_);
  }
  outcome_.Clear();
  state_ = State::kEmpty;
  committed_ = 0;
}

void TaskOutput::Finish() {
  if (base_ != nullptr) munmap(base_, capacity_);
  if (fd_ >= 0) {
    (void)!ftruncate(fd_, static_cast<off_t>(used_));
    close(fd_);
    if (used_ == 0) RemoveSegment(name_);
  }
  base_ = nullptr;
  fd_ = -1;
  capacity_ = 0;
}

}  // namespace jobd
