/* A plugin built for another ABI version. */
#include <jobd/plugin.h>

static const jobd_plugin plugin = {JOBD_PLUGIN_ABI_VERSION + 1, sizeof(jobd_plugin), NULL, 0,
                                   sizeof(jobd_function), NULL, NULL};
const jobd_plugin* jobd_plugin_v1(void) { return &plugin; }
