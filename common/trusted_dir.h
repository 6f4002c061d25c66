// Opening what jobd keeps on disk (sockets, lock, pid and log files) so that
// no other user can redirect it. A path is only as safe as every directory on
// the way to it: whoever can write to one of them can swap what comes next
// for a directory or a symlink of their own. So each directory from / down
// must belong to root or to us and be writable by nobody else, unless it is
// sticky like /tmp (others may add entries there, but not move ours; what we
// use in it must then be root's or ours, and a symlink there is refused).
// Files are then opened relative to the checked directory's descriptor,
// never following a symlink, so nothing can change between check and use.
#pragma once

#include <string>
#include <utility>

#include "jobd/status.h"

namespace jobd {

// An owned file descriptor, closed when destroyed.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  ~UniqueFd();
  int get() const { return fd_; }
  // Gives up ownership.
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// A directory checked the whole way from /, held open by descriptor.
struct TrustedDir {
  UniqueFd fd;        // O_PATH: for the *at() calls
  std::string path;   // as given, for messages
  bool shared = false;  // others may create entries in it (a sticky directory like /tmp)
};

// How a directory is checked, beyond the way to it.
enum class DirUse {
  kAny,      // only the way to it, and the directory itself, as above
  kPrivate,  // also ours alone: owned by us, mode 0700 or stricter (jobd's sockets)
};

// Opens `path` after checking every directory on the way as described above;
// symlinks are followed only where root or we made them. Missing directories
// are created with mode 0700 when `create`. On failure the message says which
// directory is wrong, whose it is and what to do; `*missing` (if given) tells
// whether it failed because a directory does not exist.
Result<TrustedDir> OpenTrustedDir(const std::string& path, DirUse use, bool create,
                                  bool* missing = nullptr);

// Opens (creating with mode 0600 if missing) the file `name` in `dir` with
// `flags` (O_WRONLY, O_APPEND, ...), never following a symlink nor blocking on
// a FIFO. The file must be a regular file of ours with one link, so neither a
// file another user made nor a hard link to one of ours is written. Never
// truncates: O_TRUNC is refused; truncate once it is open.
Result<UniqueFd> OpenOwnFile(const TrustedDir& dir, const std::string& name, int flags);
// The same for a path whose directory is checked with OpenTrustedDir.
Result<UniqueFd> OpenOwnFile(const std::string& path, int flags);

// A listening Unix socket bound as `name` in `dir`, replacing a stale socket
// of that name (a file of another kind there is an error).
Result<UniqueFd> ListenUnixSocket(const TrustedDir& dir, const std::string& name);

// "uid 1001 (mallory)": a user as messages name them.
std::string DescribeUser(unsigned uid);

}  // namespace jobd
