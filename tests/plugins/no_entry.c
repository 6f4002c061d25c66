/* A shared library that is not a jobd plugin: it exports no jobd_plugin_v1. */
int not_a_plugin(void) { return 42; }
