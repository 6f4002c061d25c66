// Plugins: shared libraries implementing include/jobd/plugin.h, loaded once
// per worker, their init called once and their fini when the worker stops.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "jobd/status.h"
#include "worker/functions.h"

namespace jobd {

class Plugins {
 public:
  Plugins();
  Plugins(const Plugins&) = delete;
  Plugins& operator=(const Plugins&) = delete;
  ~Plugins();  // fini, then dlclose, for every loaded plugin

  // Loads `path` and adds its functions to `registry` (a pool's plugins).
  Status Load(const std::string& path, FunctionRegistry& registry);
  // The functions of plugin `path`, loaded on first use (a job's --plugin),
  // and again if the file changes.
  Result<const FunctionRegistry*> ForJob(const std::string& path);

 private:
  struct Loaded;
  static std::string Identity(const std::string& path);
  Result<Loaded*> Open(const std::string& path);
  // By Identity(): the path with the file's device, inode and mtime.
  std::map<std::string, std::unique_ptr<Loaded>> loaded_;
  std::map<std::string, FunctionRegistry> job_registries_;
};

}  // namespace jobd
