#include "worker/files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace jobd {

Result<std::string_view> MappedFiles::Map(const std::string& path) {
  auto fail = [&](const std::string& why) {
    return Status::Error("cannot read " + path + ": " + why);
  };
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(std::strerror(errno));
  struct stat st{};
  if (fstat(fd, &st) != 0) {
    const int error = errno;
    close(fd);
    return fail(std::strerror(error));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return fail(S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file");
  }
  if (st.st_size == 0) {  // no size known (/proc, /sys): read to the end
    std::string& contents = read_.emplace_back();
    char buffer[65536];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof buffer)) > 0) contents.append(buffer, static_cast<size_t>(n));
    const int error = errno;
    close(fd);
    if (n < 0) return fail(std::strerror(error));
    return std::string_view(contents);
  }
  void* data = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int error = errno;
  close(fd);
  if (data == MAP_FAILED) return fail(std::strerror(error));
  mapped_.push_back({data, static_cast<size_t>(st.st_size)});
  return std::string_view(static_cast<const char*>(data), static_cast<size_t>(st.st_size));
}

void MappedFiles::Clear() {
  for (const Mapping& mapping : mapped_) munmap(mapping.data, mapping.size);
  mapped_.clear();
  read_.clear();
}

}  // namespace jobd
