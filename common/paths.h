// Where jobd's sockets live. The client endpoint defaults to
// ipc://$XDG_RUNTIME_DIR/jobd/jobd.sock (else /tmp/jobd-$UID/jobd/jobd.sock), in a
// directory of mode 0700 owned by the user (checked by common/trusted_dir.h).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "jobd/status.h"

namespace jobd {

// $XDG_RUNTIME_DIR, or /tmp/jobd-<uid> when it is unset.
std::string RuntimeBase();
// RuntimeBase()/jobd
std::string DefaultRuntimeDir();
// ipc://<DefaultRuntimeDir()>/jobd.sock
std::string DefaultEndpoint();
// The absolute filesystem path of an ipc:// endpoint; an error for other
// transports, relative paths and abstract names (ipc://@name).
Result<std::string> IpcPath(const std::string& endpoint);
// Expands $VAR and ${VAR} from the environment (unset variables expand to "",
// an unset or empty XDG_RUNTIME_DIR to RuntimeBase()).
std::string ExpandEnv(const std::string& text);
// The entries of a colon-separated list such as $PATH (empty ones kept).
std::vector<std::string> SplitPathList(std::string_view list);
// Directory holding the running executable.
std::string ExecutableDir();

}  // namespace jobd
