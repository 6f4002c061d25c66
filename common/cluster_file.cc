#include "common/cluster_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "common/random.h"
#include "common/trusted_dir.h"

namespace jobd {
namespace {

constexpr size_t kKeyLength = 40;  // a 32-byte key in Z85

bool IsKey(const std::string& text) {
  uint8_t key[32];
  return text.size() == kKeyLength && zmq_z85_decode(key, text.c_str()) != nullptr;
}

std::string Describe(const std::string& path) { return "cluster file " + path; }

}  // namespace

std::string HostName() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

bool IsTcpEndpoint(const std::string& endpoint) { return endpoint.rfind("tcp://", 0) == 0; }

Result<ClusterFile> ClusterFile::Generate(const std::string& endpoint) {
  ClusterFile file;
  file.endpoint = endpoint;
  char server_public[kKeyLength + 1], server_secret[kKeyLength + 1];
  char client_public[kKeyLength + 1], client_secret[kKeyLength + 1];
  if (zmq_curve_keypair(server_public, server_secret) != 0 ||
      zmq_curve_keypair(client_public, client_secret) != 0) {
    return Status::Error(std::string("cannot make CurveZMQ keys: ") + zmq_strerror(zmq_errno()) +
                         " (libzmq built without CURVE?)");
  }
  file.server_public = server_public;
  file.server_secret = server_secret;
  file.client_public = client_public;
  file.client_secret = client_secret;
  return file;
}

Status ClusterFile::Write(const std::string& path) const {
  const std::filesystem::path target = std::filesystem::absolute(path);
  Result<TrustedDir> dir = OpenTrustedDir(target.parent_path().string(), DirUse::kAny, false);
  if (!dir.ok()) return Status::Error("cannot write " + Describe(path) + ": " + dir.message());
  const std::string name = target.filename().string();
  const std::string temporary = "." + name + "." + RandomHex(8);
  const int fd = openat(dir->fd.get(), temporary.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::Error("cannot write " + Describe(path) + ": " + std::strerror(errno));
  }
  std::string text = "endpoint " + endpoint + "\nserver_key " + server_public +
                     "\nclient_public " + client_public + "\nclient_secret " + client_secret + "\n";
  if (!host.empty() && !local.empty() && pid != 0) {
    text += "host " + host + "\nlocal " + local + "\npid " + std::to_string(pid) + "\n";
  }
  const bool written = fchmod(fd, 0600) == 0 &&
                       write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                       fsync(fd) == 0;
  const int error = errno;
  close(fd);
  if (!written || renameat(dir->fd.get(), temporary.c_str(), dir->fd.get(), name.c_str()) != 0) {
    const std::string why = std::strerror(written ? errno : error);
    unlinkat(dir->fd.get(), temporary.c_str(), 0);
    return Status::Error("cannot write " + Describe(path) + ": " + why);
  }
  return {};
}

Result<ClusterFile> ClusterFile::Read(const std::string& path) {
  const std::filesystem::path target = std::filesystem::absolute(path);
  Result<TrustedDir> dir = OpenTrustedDir(target.parent_path().string(), DirUse::kAny, false);
  if (!dir.ok()) return Status::Error("cannot read " + Describe(path) + ": " + dir.message());
  const int fd = openat(dir->fd.get(), target.filename().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return Status::Error("cannot read " + Describe(path) + ": " + std::strerror(errno) +
                         (errno == ENOENT ? " (the head writes it when it starts: is it running, "
                                            "with --cluster-file naming this file?)"
                                          : ""));
  }
  struct stat st{};
  std::string text;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < 4096) {
    text.resize(static_cast<size_t>(st.st_size));
    if (read(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) text.clear();
  }
  close(fd);
  if (!S_ISREG(st.st_mode) || st.st_uid != getuid()) {
    return Status::Error(Describe(path) + " is not a regular file of this user's (uid " +
                         std::to_string(getuid()) + "); use the file the head wrote");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::Error(Describe(path) + " may be read by others (mode " + mode +
                         "): its keys let anyone use the cluster; chmod 600 it and restart the head "
                         "for new keys");
  }
  std::map<std::string, std::string> fields;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t space = line.find(' ');
    if (!line.empty()) fields[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(space + 1);
  }
  ClusterFile file;
  file.endpoint = fields["endpoint"];
  file.server_public = fields["server_key"];
  file.client_public = fields["client_public"];
  file.client_secret = fields["client_secret"];
  // Where the head runs: all three, or the client takes the TCP way.
  char* end = nullptr;
  const unsigned long pid = std::strtoul(fields["pid"].c_str(), &end, 10);
  if (!fields["host"].empty() && fields["local"].rfind("ipc://", 0) == 0 && end != nullptr &&
      *end == '\0' && pid > 0 && pid <= UINT32_MAX) {
    file.host = fields["host"];
    file.local = fields["local"];
    file.pid = static_cast<uint32_t>(pid);
  }
  if (!IsTcpEndpoint(file.endpoint) || !IsKey(file.server_public) || !IsKey(file.client_public) ||
      !IsKey(file.client_secret)) {
    return Status::Error(Describe(path) + " is not one jobd wrote (it needs endpoint tcp://..., "
                         "server_key, client_public and client_secret lines)");
  }
  return file;
}

}  // namespace jobd
