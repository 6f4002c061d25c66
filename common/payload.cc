#include "common/payload.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>

#include "common/random.h"

namespace jobd {
namespace bip = boost::interprocess;

namespace {

std::string UidPrefix() { return "jobd-" + std::to_string(getuid()) + "-"; }

}  // namespace

pid_t SegmentCreator(std::string_view name) {
  if (!IsSegmentName(name)) return 0;
  name.remove_prefix(UidPrefix().size());
  pid_t pid = 0;
  std::from_chars(name.data(), name.data() + name.size(), pid);
  return pid;
}

std::string NewSegmentName(pid_t creator) {
  return UidPrefix() + std::to_string(creator != 0 ? creator : getpid()) + "-" + RandomHex(8);
}

bool IsSegmentName(std::string_view name) {
  const std::string prefix = UidPrefix();
  if (name.size() > 128 || name.substr(0, prefix.size()) != prefix) return false;
  std::string_view rest = name.substr(prefix.size());
  const size_t dash = rest.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash > 10) return false;
  for (size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    const bool ok = i < dash ? (c >= '0' && c <= '9')
                             : i == dash || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
    if (!ok) return false;
  }
  return rest.size() > dash + 1;
}

void RemoveSegment(const std::string& name) { bip::shared_memory_object::remove(name.c_str()); }

std::vector<std::string> ListSegments() {
  std::vector<std::string> names;
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) {
    if (IsSegmentName(entry->d_name)) names.emplace_back(entry->d_name);
  }
  closedir(dir);
  return names;
}

bool ProcessExited(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t name_end = line.rfind(')');  // the command name may hold anything
  return name_end != std::string::npos && line.compare(name_end, 3, ") Z") == 0;
}

int ReapOrphanSegments() {
  int removed = 0;
  for (const std::string& name : ListSegments()) {
    const pid_t creator = SegmentCreator(name);
    if (creator > 0 && ProcessExited(creator)) {
      RemoveSegment(name);
      ++removed;
    }
  }
  return removed;
}

// ------------------------------------------------------------------ Segment

Segment::Segment(std::string name, std::unique_ptr<bip::mapped_region> region, int fd)
    : name_(std::move(name)), fd_(fd), region_(std::move(region)) {
  if (region_) {
    data_ = static_cast<char*>(region_->get_address());
    size_ = region_->get_size();
  }
}
Segment::Segment(Segment&& other) noexcept
    : name_(std::move(other.name_)),
      fd_(std::exchange(other.fd_, -1)),
      region_(std::move(other.region_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}
Segment& Segment::operator=(Segment&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    name_ = std::move(other.name_);
    fd_ = std::exchange(other.fd_, -1);
    region_ = std::move(other.region_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}
Segment::~Segment() {
  if (fd_ >= 0) close(fd_);
}

int AllocateForWriting(int fd, char* base, size_t offset, size_t length) {
  const int error = posix_fallocate(fd, static_cast<off_t>(offset), static_cast<off_t>(length));
  if (error != 0 || base == nullptr || length == 0) return error;
  // Linux 5.14's MADV_POPULATE_WRITE; an older kernel refuses it, and the
  // pages are faulted in as they are written.
  constexpr int kPopulateWrite = 23;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = reinterpret_cast<uintptr_t>(base + offset) / page * page;
  const uintptr_t end = reinterpret_cast<uintptr_t>(base + offset + length);
  (void)madvise(reinterpret_cast<void*>(start), end - start, kPopulateWrite);
  return 0;
}

Status Segment::Allocate(size_t offset, size_t length) {
  if (length == 0) return {};
  const int error = fd_ < 0 ? EBADF : AllocateForWriting(fd_, data_, offset, length);
  if (error == 0) return {};
  return Status::Error("cannot allocate " + std::to_string(length) + " bytes of shared memory in " +
                       name_ + ": " + std::strerror(error) + " (is /dev/shm full?)");
}

Result<Segment> Segment::Create(const std::string& name, size_t size) {
  try {
    bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write,
                                  bip::permissions(0600));
    shm.truncate(static_cast<bip::offset_t>(size));
    auto region = size == 0 ? nullptr : std::make_unique<bip::mapped_region>(shm, bip::read_write);
    const int fd = fcntl(shm.get_mapping_handle().handle, F_DUPFD_CLOEXEC, 0);
    return Segment(name, std::move(region), fd);
  } catch (const bip::interprocess_exception& e) {
    RemoveSegment(name);
    return Status::Error("cannot create shared-memory segment " + name + " of " +
                         std::to_string(size) + " bytes: " + e.what());
  }
}

Result<Segment> Segment::Open(const std::string& name, bool writable) {
  if (!IsSegmentName(name)) {
    return Status::Error("'" + name + "' is not a jobd segment name of this user");
  }
  try {
    const bip::mode_t mode = writable ? bip::read_write : bip::read_only;
    bip::shared_memory_object shm(bip::open_only, name.c_str(), mode);
    bip::offset_t size = 0;
    shm.get_size(size);
    auto region = size == 0 ? nullptr : std::make_unique<bip::mapped_region>(shm, mode);
    return Segment(name, std::move(region), -1);
  } catch (const bip::interprocess_exception& e) {
    return Status::Error("cannot open shared-memory segment " + name + ": " + e.what());
  }
}

Result<std::string_view> Segment::Slice(uint64_t offset, uint64_t length) const {
  if (offset > size_ || length > size_ - offset) {
    return Status::Error("payload [" + std::to_string(offset) + ", +" + std::to_string(length) +
                         ") lies outside segment " + name_ + " of " + std::to_string(size_) +
                         " bytes");
  }
  return std::string_view(data_ + offset, length);
}

// ------------------------------------------------------------ SegmentReader

Result<std::string_view> SegmentReader::Read(const wire::Payload& payload) {
  if (!payload.has_ref()) return std::string_view(payload.data());
  const wire::SegmentRef& ref = payload.ref();
  auto found = mapped_.find(ref.segment());
  if (found == mapped_.end()) {
    Result<Segment> opened = Segment::Open(ref.segment());
    if (!opened.ok()) return opened.status();
    found = mapped_.emplace(ref.segment(), std::move(opened).value()).first;
  }
  return found->second.Slice(ref.offset(), ref.length());
}

// ------------------------------------------------------------ PayloadWriter

Result<char*> PayloadWriter::Reserve(size_t size, wire::Payload* out) {
  if (size <= inline_limit_) {
    std::string* data = out->mutable_data();
    data->resize(size);
    return data->data();
  }
  if (!current_ || current_->size() - used_ < size) {
    const std::string name = NewSegmentName();
    Result<Segment> created = Segment::Create(name, std::max(size, segment_size_));
    if (!created.ok()) return created.status();
    current_ = std::make_unique<Segment>(std::move(created).value());
    used_ = 0;
    new_segments_.push_back(name);
  }
  if (Status s = current_->Allocate(used_, size); !s.ok()) return s;
  wire::SegmentRef* ref = out->mutable_ref();
  ref->set_segment(current_->name());
  ref->set_offset(used_);
  ref->set_length(size);
  char* start = current_->data() + used_;
  used_ += size;
  return start;
}

Status PayloadWriter::Add(std::string_view bytes, wire::Payload* out) {
  Result<char*> space = Reserve(bytes.size(), out);
  if (!space.ok()) return space.status();
  if (!bytes.empty()) std::memcpy(*space, bytes.data(), bytes.size());
  return {};
}

void PayloadBytes::Count(const wire::Payload& payload) {
  if (payload.has_ref()) {
    shared_bytes += payload.ref().length();
  } else {
    inline_bytes += payload.data().size();
  }
}

void PayloadBytes::Count(const wire::Task& task) {
  inline_bytes += task.packed().data().size();
  for (const wire::Payload& item : task.items()) Count(item);
}

void PayloadBytes::Count(const wire::TaskResult& result) {
  inline_bytes += result.values().data().size();
  for (const wire::Outcome& outcome : result.outcomes()) {
    if (outcome.has_value()) Count(outcome.value());
  }
}

std::vector<std::string> PayloadWriter::TakeNewSegments() { return std::exchange(new_segments_, {}); }

}  // namespace jobd
