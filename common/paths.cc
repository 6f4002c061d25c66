#include "common/paths.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>

namespace jobd {

std::string RuntimeBase() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && *xdg != '\0') return xdg;
  return "/tmp/jobd-" + std::to_string(getuid());
}

std::string DefaultRuntimeDir() { return RuntimeBase() + "/jobd"; }

std::string DefaultEndpoint() { return "ipc://" + DefaultRuntimeDir() + "/jobd.sock"; }

Result<std::string> IpcPath(const std::string& endpoint) {
  constexpr std::string_view kScheme = "ipc://";
  if (endpoint.rfind(kScheme, 0) != 0 || endpoint.size() == kScheme.size()) {
    return Status::Error("endpoint '" + endpoint +
                         "' is not supported: jobd listens on ipc://PATH endpoints only");
  }
  const std::string path = endpoint.substr(kScheme.size());
  // Not a relative path (it would depend on the directory of each program),
  // nor Linux's abstract namespace ('@'), which has no owner or permissions
  // to check: anyone could bind the name first.
  if (path[0] != '/') {
    return Status::Error("endpoint '" + endpoint + "' is not supported: the path must be " +
                         "absolute, e.g. ipc:///run/user/1000/jobd/jobd.sock");
  }
  return path;
}

std::string ExpandEnv(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '$') {
      out += text[i++];
      continue;
    }
    size_t start = i + 1;
    bool braced = start < text.size() && text[start] == '{';
    if (braced) ++start;
    size_t end = start;
    while (end < text.size() && (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_')) ++end;
    if (end == start || (braced && (end >= text.size() || text[end] != '}'))) {
      out += text[i++];
      continue;
    }
    const std::string name = text.substr(start, end - start);
    const char* value = std::getenv(name.c_str());
    if (name == "XDG_RUNTIME_DIR" && (value == nullptr || *value == '\0')) {
      out += RuntimeBase();
    } else if (value != nullptr) {
      out += value;
    }
    i = braced ? end + 1 : end;
  }
  return out;
}

std::vector<std::string> SplitPathList(std::string_view list) {
  std::vector<std::string> entries;
  while (!list.empty()) {
    const size_t colon = list.find(':');
    entries.emplace_back(list.substr(0, colon));
    list = colon == std::string_view::npos ? "" : list.substr(colon + 1);
  }
  return entries;
}

std::string ExecutableDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

}  // namespace jobd
