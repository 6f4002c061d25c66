// Shared-memory segments that carry payloads too large to inline in a message.
//
// Ownership, with no interprocess lock: every segment has one writer, which
// fills it completely before sending the message that names it; readers map it
// read-only and check every offset and length against its size. Names are
// "jobd-<uid>-<creator pid>-<random>", mode 0600, so that a segment whose
// creator is gone can be found and removed (ReapOrphanSegments).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "jobd/status.h"
#include "jobd.pb.h"

namespace boost::interprocess {
class mapped_region;
}

namespace jobd {

// Items and results above this many bytes travel in shared memory.
inline constexpr size_t kInlineLimit = 16 * 1024;

// A fresh segment name owned by process `creator` (default: this process).
std::string NewSegmentName(pid_t creator = 0);
// True if `name` has the shape NewSegmentName makes, for the current uid.
bool IsSegmentName(std::string_view name);
// The creator pid a segment's name carries; 0 if it is not a segment name of
// this user.
pid_t SegmentCreator(std::string_view name);
// Removes the segment (no error if it is already gone).
void RemoveSegment(const std::string& name);
// Whether process `pid` has exited: gone, or a zombie its parent has not
// reaped yet (a daemon killed moments ago whose parent does not wait).
bool ProcessExited(pid_t pid);
// Removes this uid's segments whose creator process has exited.
// Returns how many were removed.
int ReapOrphanSegments();
// Names of this uid's segments that exist now (for tests and reaping).
std::vector<std::string> ListSegments();

// Payload bytes counted by the way they travelled: inline in messages, or in
// shared memory.
struct PayloadBytes {
  uint64_t inline_bytes = 0;
  uint64_t shared_bytes = 0;

  void Count(const wire::Payload& payload);
  void Count(const wire::Task& task);          // its items
  void Count(const wire::TaskResult& result);  // its values
};

// Reserves bytes [offset, offset + length) of the shared-memory file `fd`,
// which is mapped read-write at `base`, so that a full /dev/shm is an error
// here and not a SIGBUS at the first write; then maps those pages for writing
// in one system call instead of a page fault per 4 KiB (writing 4 MiB of
// fresh pages takes a fifth less). Returns 0 or posix_fallocate's error.
int AllocateForWriting(int fd, char* base, size_t offset, size_t length);

// A mapped segment. Movable, not copyable; unmaps when destroyed.
class Segment {
 public:
  // Creates `name` with `size` bytes (mode 0600) and maps it read-write. Its
  // pages are not reserved yet: Allocate() the ranges before writing them.
  static Result<Segment> Create(const std::string& name, size_t size);
  // Maps an existing segment, read-only unless `writable`.
  static Result<Segment> Open(const std::string& name, bool writable = false);

  Segment(Segment&&) noexcept;
  Segment& operator=(Segment&&) noexcept;
  ~Segment();

  const std::string& name() const { return name_; }
  size_t size() const { return size_; }
  char* data() { return data_; }
  // Reserves memory for [offset, offset + length) of a segment this process
  // created, so that a full /dev/shm is an error here and not a SIGBUS at the
  // first write into the mapping.
  Status Allocate(size_t offset, size_t length);
  // The bytes [offset, offset + length), or an error if they are not all inside.
  Result<std::string_view> Slice(uint64_t offset, uint64_t length) const;

 private:
  Segment(std::string name, std::unique_ptr<boost::interprocess::mapped_region> region, int fd);
  std::string name_;
  int fd_ = -1;  // kept for Allocate on segments we created
  std::unique_ptr<boost::interprocess::mapped_region> region_;  // null when size is 0
  char* data_ = nullptr;
  size_t size_ = 0;
};

// Read-only mappings of the segments a process reads payloads from, opened on
// first use. Keep() bounds how many stay mapped.
class SegmentReader {
 public:
  // The bytes of `payload`: inline data, or the checked slice of its segment.
  Result<std::string_view> Read(const wire::Payload& payload);
  // Unmaps `name` if mapped.
  void Forget(const std::string& name) { mapped_.erase(name); }
  void Clear() { mapped_.clear(); }

 private:
  std::map<std::string, Segment, std::less<>> mapped_;
};

// Places payloads: small ones inline, large ones in segments this process
// creates, each at least `segment_size` bytes. Remembers which segments it made.
// Fills one segment at a time: Seal() starts a new one.
class PayloadWriter {
 public:
  // Only the bytes reserved for payloads are allocated, whatever the segment
  // size. Without `shared`, every payload is inline: its reader is on another
  // host (a TCP peer).
  explicit PayloadWriter(size_t segment_size = 16 << 20, bool shared = true)
      : segment_size_(segment_size), inline_limit_(shared ? kInlineLimit : SIZE_MAX) {}
  // Payloads up to this size are inline.
  size_t inline_limit() const { return inline_limit_; }
  // Reserves `size` bytes for one payload and points `out` at them. Large
  // payloads get shared memory; the caller fills the returned span. Small
  // ones get out->data.
  Result<char*> Reserve(size_t size, wire::Payload* out);
  Status Add(std::string_view bytes, wire::Payload* out);
  // Segments created since the last call.
  std::vector<std::string> TakeNewSegments();
  // Drops the current segment so the next large payload opens a new one.
  void Seal() { current_.reset(); }

 private:
  size_t segment_size_;
  size_t inline_limit_;
  std::unique_ptr<Segment> current_;
  size_t used_ = 0;
  std::vector<std::string> new_segments_;
};

}  // namespace jobd
