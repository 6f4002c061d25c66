// jobd-worker: started by jobd (fork, then exec), never by hand.
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/log.h"
#include "worker/worker.h"

namespace {

// jobd hands a worker its routing id and secret on this descriptor, one per
// line, so that they appear in no command line and no file.
constexpr int kCredentialsFd = 3;

bool ReadCredentials(jobd::WorkerOptions* options) {
  std::string text;
  char buffer[256];
  ssize_t n;
  while ((n = read(kCredentialsFd, buffer, sizeof buffer)) > 0 && text.size() < 4096) {
    text.append(buffer, static_cast<size_t>(n));
  }
  close(kCredentialsFd);
  const size_t first = text.find('\n');
  if (first == std::string::npos || text.empty() || text.back() != '\n') return false;
  options->identity = text.substr(0, first);
  options->secret = text.substr(first + 1, text.size() - first - 2);
  return !options->identity.empty() && !options->secret.empty();
}

}  // namespace

int main(int argc, char** argv) {
  jobd::SetLogName("jobd-worker");
  jobd::WorkerOptions options;
  if (argc < 5 || !ReadCredentials(&options)) {
    std::fprintf(stderr,
                 "jobd-worker is started by jobd, not by hand.\n"
                 "usage: jobd-worker ENDPOINT RUNNING_ITEM_SEGMENT SUPERVISOR_PID SLOT [PLUGIN...]\n"
                 "       (with its credentials on descriptor %d)\n",
                 kCredentialsFd);
    return 2;
  }
  // Die with the supervisor; if it is already gone, do not linger.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  options.supervisor = static_cast<pid_t>(std::atol(argv[3]));
  if (getppid() != options.supervisor) return 1;
  // SIGTERM and SIGINT go to the supervisor's process group too; the
  // supervisor decides when a worker stops (it sends Stop, or SIGKILL).
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  // A command that exits without reading its stdin must not take us along.
  std::signal(SIGPIPE, SIG_IGN);
  options.endpoint = argv[1];
  options.running_item = argv[2];
  options.slot = static_cast<uint32_t>(std::atol(argv[4]));
  options.plugins.assign(argv + 5, argv + argc);
  return jobd::RunWorker(options);
}
