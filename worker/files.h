// The files a job's items name (Submit.read_files: a client on another host
// names them, the worker reads them where it runs), mapped read-only for as
// long as the task that reads them runs.
#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "jobd/status.h"

namespace jobd {

class MappedFiles {
 public:
  MappedFiles() = default;
  MappedFiles(const MappedFiles&) = delete;
  MappedFiles& operator=(const MappedFiles&) = delete;
  ~MappedFiles() { Clear(); }

  // The whole contents of the regular file at `path`, valid until Clear();
  // the error says, as sha256sum would, why it cannot be read.
  Result<std::string_view> Map(const std::string& path);
  void Clear();

 private:
  struct Mapping {
    void* data;
    size_t size;
  };
  std::vector<Mapping> mapped_;
  std::deque<std::string> read_;  // files without a size, read whole
};

}  // namespace jobd
