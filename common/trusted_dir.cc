#include "common/trusted_dir.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <vector>

namespace jobd {
namespace {

// Symlinks followed on one path at most, as the kernel's own limit.
constexpr int kMaxSymlinks = 40;

std::string Mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::deque<std::string> Split(const std::string& path) {
  std::deque<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

std::string Join(const std::vector<std::string>& parts) {
  std::string path;
  for (const std::string& part : parts) path += "/" + part;
  return path.empty() ? "/" : path;
}

// Whether only root or we can change what `dir` (already stat'ed) holds.
Status CheckDirectory(const struct stat& st, const std::string& dir) {
  if (!S_ISDIR(st.st_mode)) return Status::Error(dir + " is not a directory");
  if (st.st_uid != 0 && st.st_uid != getuid()) {
    return Status::Error(dir + " belongs to " + DescribeUser(st.st_uid) + ", not to you (" +
                         DescribeUser(getuid()) + ") or root: its owner could redirect what jobd "
                         "keeps there (it may have been made to intercept your jobs); ask its "
                         "owner or root to remove it, or use a directory of your own (set "
                         "XDG_RUNTIME_DIR, or the endpoint: `listen:`, --socket, JOBD_SOCKET)");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    return Status::Error(dir + " is writable by other users (mode " + Mode(st.st_mode) +
                         ") and not sticky: they could replace what jobd keeps there; " +
                         "`chmod go-w " + dir + "` or choose another directory");
  }
  return {};
}

Status CheckPrivate(const struct stat& st, const std::string& dir) {
  const std::string elsewhere =
      "give jobd a directory of its own, such as $XDG_RUNTIME_DIR/jobd (the endpoint: "
      "`listen:`, --socket, JOBD_SOCKET)";
  if (st.st_uid != getuid()) {
    return Status::Error(dir + " belongs to " + DescribeUser(st.st_uid) + ", not to you (" +
                         DescribeUser(getuid()) + "), and jobd's sockets need a directory that " +
                         "is yours alone: " + elsewhere);
  }
  if ((st.st_mode & 077) != 0) {
    // A shared directory of ours (sticky, like /tmp) is not to be closed.
    return Status::Error(dir + " is open to other users (mode " + Mode(st.st_mode) +
                         "), and jobd's sockets need a private directory: " +
                         ((st.st_mode & S_ISVTX) != 0 ? elsewhere
                                                      : "`chmod 700 " + dir + "`, or " + elsewhere));
  }
  return {};
}

// Why `name` cannot be opened in `parent` (stat'ed as `parent_st`).
std::string OpenError(int error, const std::string& path, const std::string& parent,
                      const struct stat& parent_st) {
  if (error == EACCES) {
    return path + " is not accessible to you (" + DescribeUser(getuid()) + "): " + parent +
           " belongs to " + DescribeUser(parent_st.st_uid) + " and has mode " +
           Mode(parent_st.st_mode);
  }
  if (error == ENOENT) return path + " does not exist";
  return "cannot open " + path + ": " + std::strerror(error);
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);
}

std::string DescribeUser(unsigned uid) {
  std::string text = "uid " + std::to_string(uid);
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  if (getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    text += std::string(" (") + found->pw_name + ")";
  }
  return text;
}

Result<TrustedDir> OpenTrustedDir(const std::string& path, DirUse use, bool create,
                                  bool* missing) {
  if (missing != nullptr) *missing = false;
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(path, ec).string();
  if (ec) return Status::Error("cannot resolve " + path + ": " + ec.message());

  // The walk: `done` is where `fd` is, `todo` what is left. ".." and absolute
  // symlinks start again from /, so every directory passed is checked.
  std::deque<std::string> todo = Split(absolute);
  std::vector<std::string> done;
  UniqueFd fd;
  struct stat st{};
  bool shared = false;
  int symlinks = 0;
  auto restart = [&] {
    fd = UniqueFd(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    done.clear();
    if (fd.get() < 0 || fstat(fd.get(), &st) != 0) {
      return Status::Error(std::string("cannot open /: ") + std::strerror(errno));
    }
    shared = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    return CheckDirectory(st, "/");
  };
  if (Status s = restart(); !s.ok()) return s;
  while (!todo.empty()) {
    const std::string name = todo.front();
    todo.pop_front();
    if (name == ".") continue;
    if (name == "..") {
      if (!done.empty()) done.pop_back();
      todo.insert(todo.begin(), done.begin(), done.end());
      if (Status s = restart(); !s.ok()) return s;
      continue;
    }
    const std::string here = Join(done);
    std::vector<std::string> next_parts = done;
    next_parts.push_back(name);
    const std::string next = Join(next_parts);
    const struct stat parent_st = st;
    UniqueFd child(openat(fd.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (child.get() < 0 && errno == ENOENT && create) {
      if (mkdirat(fd.get(), name.c_str(), 0700) != 0 && errno != EEXIST) {
        return Status::Error("cannot create directory " + next + ": " + std::strerror(errno));
      }
      child = UniqueFd(openat(fd.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    }
    if (child.get() < 0) {
      if (missing != nullptr) *missing = errno == ENOENT;
      return Status::Error(OpenError(errno, next, here, parent_st));
    }
    if (fstat(child.get(), &st) != 0) {
      return Status::Error("cannot stat " + next + ": " + std::strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) {
      if (shared) {
        return Status::Error(next + " is a symlink in " + here + ", where other users can " +
                             "create entries (mode " + Mode(parent_st.st_mode) + "): one of them " +
                             "may have made it to redirect jobd; remove it or choose another " +
                             "directory");
      }
      if (++symlinks > kMaxSymlinks) return Status::Error(path + ": too many symlinks");
      std::vector<char> target(PATH_MAX + 1);
      const ssize_t length = readlinkat(child.get(), "", target.data(), PATH_MAX);
      if (length <= 0) return Status::Error("cannot read the symlink " + next);
      const std::string link(target.data(), static_cast<size_t>(length));
      std::deque<std::string> parts = Split(link);
      todo.insert(todo.begin(), parts.begin(), parts.end());
      st = parent_st;
      if (link[0] == '/') {
        if (Status s = restart(); !s.ok()) return s;
      }
      continue;
    }
    if (Status s = CheckDirectory(st, next); !s.ok()) return s;
    shared = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    fd = std::move(child);
    done = std::move(next_parts);
  }
  if (use == DirUse::kPrivate) {
    if (Status s = CheckPrivate(st, path); !s.ok()) return s;
  }
  TrustedDir dir;
  dir.fd = std::move(fd);
  dir.path = path;
  dir.shared = shared;
  return dir;
}

Result<UniqueFd> OpenOwnFile(const TrustedDir& dir, const std::string& name, int flags) {
  const std::string path = dir.path + "/" + name;
  if (name.empty() || name.find('/') != std::string::npos || (flags & O_TRUNC) != 0) {
    return Status::Error("internal error: OpenOwnFile(" + path + ")");
  }
  flags |= O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  // Created here, or else an existing file checked below: never one that
  // appears between the two (O_EXCL), and never through a symlink.
  UniqueFd fd(openat(dir.fd.get(), name.c_str(), flags | O_CREAT | O_EXCL, 0600));
  for (int attempt = 0; fd.get() < 0 && errno == EEXIST && attempt < 3; ++attempt) {
    fd = UniqueFd(openat(dir.fd.get(), name.c_str(), flags));
    if (fd.get() < 0 && errno == ENOENT) {
      fd = UniqueFd(openat(dir.fd.get(), name.c_str(), flags | O_CREAT | O_EXCL, 0600));
    }
  }
  if (fd.get() < 0) {
    if (errno == ELOOP) {
      return Status::Error(path + " is a symlink; jobd does not follow one here (it could point "
                           "at a file of yours someone wants overwritten): remove it or choose "
                           "another path");
    }
    if (errno == ENXIO) return Status::Error(path + " is a FIFO or a socket, not a regular file");
    return Status::Error("cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st{};
  if (fstat(fd.get(), &st) != 0) return Status::Error("cannot stat " + path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Status::Error(path + " is not a regular file");
  if (st.st_uid != getuid()) {
    return Status::Error(path + " belongs to " + DescribeUser(st.st_uid) + ", not to you (" +
                         DescribeUser(getuid()) + "); remove it or choose another path");
  }
  if (st.st_nlink != 1) {
    return Status::Error(path + " has " + std::to_string(st.st_nlink) + " hard links: jobd " +
                         "writes only a file with one name, so that no other file changes; " +
                         "remove it or choose another path");
  }
  fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return fd;
}

Result<UniqueFd> OpenOwnFile(const std::string& path, int flags) {
  const std::filesystem::path file(path);
  if (!file.has_filename()) return Status::Error(path + " names a directory, not a file");
  const std::string parent = file.has_parent_path() ? file.parent_path().string() : ".";
  Result<TrustedDir> dir = OpenTrustedDir(parent, DirUse::kAny, /*create=*/false);
  if (!dir.ok()) return Status::Error("cannot use " + path + ": " + dir.message());
  return OpenOwnFile(*dir, file.filename().string(), flags);
}

Result<UniqueFd> ListenUnixSocket(const TrustedDir& dir, const std::string& name) {
  const std::string path = dir.path + "/" + name;
  struct stat st{};
  if (fstatat(dir.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status::Error(path + " exists and is not a socket; remove it or choose another endpoint");
    }
    unlinkat(dir.fd.get(), name.c_str(), 0);  // a stale socket: its jobd is gone (we hold the lock)
  }
  // bind() takes a path, not a directory descriptor: the descriptor's own
  // entry in /proc names exactly the directory that was checked.
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string via = "/proc/self/fd/" + std::to_string(dir.fd.get()) + "/" + name;
  if (via.size() >= sizeof address.sun_path) return Status::Error("socket name too long: " + name);
  std::memcpy(address.sun_path, via.c_str(), via.size() + 1);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Status::Error(std::string("socket: ") + std::strerror(errno));
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      listen(fd.get(), SOMAXCONN) != 0) {
    return Status::Error("cannot listen on " + path + ": " + std::strerror(errno));
  }
  return fd;
}

}  // namespace jobd
