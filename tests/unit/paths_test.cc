#include "common/paths.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace jobd {
namespace {

TEST(PathsTest, EndpointsAndEnvironment) {
  EXPECT_EQ(*IpcPath("ipc:///run/x.sock"), "/run/x.sock");
  EXPECT_FALSE(IpcPath("tcp://1.2.3.4:5").ok());
  EXPECT_FALSE(IpcPath("ipc://").ok());
  EXPECT_NE(IpcPath("ipc://@abstract/jobd.sock").message().find("the path must be absolute"),
            std::string::npos);
  EXPECT_FALSE(IpcPath("ipc://relative/jobd.sock").ok());
  setenv("JOBD_PATHS_TEST", "v", 1);
  EXPECT_EQ(ExpandEnv("a/$JOBD_PATHS_TEST/${JOBD_PATHS_TEST}b/$"), "a/v/vb/$");
  unsetenv("JOBD_PATHS_UNSET");
  EXPECT_EQ(ExpandEnv("x$JOBD_PATHS_UNSET/y"), "x/y");
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  const std::string saved = xdg ? xdg : "";
  unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(ExpandEnv("$XDG_RUNTIME_DIR/jobd"), "/tmp/jobd-" + std::to_string(getuid()) + "/jobd");
  EXPECT_EQ(DefaultEndpoint(), "ipc:///tmp/jobd-" + std::to_string(getuid()) + "/jobd/jobd.sock");
  if (xdg) setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
}

}  // namespace
}  // namespace jobd
