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

int main(int argc, char** argv) {
  jobd::SetLogName("jobd-worker");
  if (argc < 6) {
    std::fprintf(stderr,
                 "jobd-worker is started by jobd, not by hand.\n"
                 "usage: jobd-worker ENDPOINT IDENTITY RUNNING_ITEM_SEGMENT SUPERVISOR_PID SLOT "
                 "[PLUGIN...]\n");
    return 2;
  }
  // Die with the supervisor; if it is already gone, do not linger.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != static_cast<pid_t>(std::atol(argv[4]))) return 1;
  // SIGTERM and SIGINT go to the supervisor's process group too; the
  // supervisor decides when a worker stops (it sends Stop, or SIGKILL).
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  // A command that exits without reading its stdin must not take us along.
  std::signal(SIGPIPE, SIG_IGN);
  jobd::WorkerOptions options{argv[1], argv[2], argv[3],
                              static_cast<uint32_t>(std::atol(argv[5])),
                              std::vector<std::string>(argv + 6, argv + argc)};
  return jobd::RunWorker(options);
}
