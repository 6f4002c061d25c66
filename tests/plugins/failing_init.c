/* A plugin whose init refuses to start. */
#include <stdio.h>
#include <jobd/plugin.h>

static int init(void** state, char* error, size_t error_size) {
  snprintf(error, error_size, "the model file is missing");
  return 1;
}
static const jobd_plugin plugin = {JOBD_PLUGIN_ABI_VERSION, sizeof(jobd_plugin), NULL, 0,
                                   sizeof(jobd_function), init, NULL};
const jobd_plugin* jobd_plugin_v1(void) { return &plugin; }
