/* The jobd plugin ABI: how a shared library gives jobd's workers functions.
 *
 * A plugin exports one C symbol, jobd_plugin_v1, returning a description of
 * its functions. Pools load plugins listed in their YAML (`plugins:`), or a
 * job loads one with `jobctl map --plugin PATH.so FUNCTION`. Each worker
 * process loads a plugin once, calls its optional init once, and calls its
 * functions for item after item: state that is costly to set up (a model, a
 * connection, a compiled pattern) lives as long as the worker.
 *
 *   #include <jobd/plugin.h>
 *   static void upper(void* state, const jobd_bytes* args, size_t count,
 *                     jobd_result* result) {
 *     char* out = result->reserve(result, args[0].size);
 *     if (out == NULL) return;  // reserve already failed the item
 *     for (size_t i = 0; i < args[0].size; ++i) out[i] = toupper(args[0].data[i]);
 *     result->commit(result, args[0].size);
 *   }
 *   static const jobd_function functions[] = {{"upper", "the item in capitals", upper}};
 *   static const jobd_plugin plugin = {JOBD_PLUGIN_ABI_VERSION, sizeof(jobd_plugin), functions,
 *                                      1, sizeof(jobd_function), NULL, NULL};
 *   const jobd_plugin* jobd_plugin_v1(void) { return &plugin; }
 *
 * Build: cc -shared -fPIC -o upper.so upper.c -I<jobd>/worker/include
 * A function that crashes costs its worker and a retry of the item, never the
 * job: see the pool's `retries`.
 *
 * Threads: a worker calls a plugin from one thread, one item at a time; each
 * worker process has its own instance (its own init state).
 * Growth: fields are only ever appended to jobd_plugin and jobd_function,
 * and their sizes say which ones a plugin knows, so a plugin built against
 * an older header of the same major version keeps working.
 */
#ifndef JOBD_PLUGIN_H_
#define JOBD_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any incompatible change; jobd refuses plugins built for another. */
#define JOBD_PLUGIN_ABI_VERSION 1

/* Bytes of an argument; valid during the call only, never NUL-terminated. */
typedef struct jobd_bytes {
  const char* data;
  size_t size;
} jobd_bytes;

/* Where a function leaves its result: reserve space, write the result in
 * place (large results go straight to shared memory, never copied again) and
 * commit it; or fail the item. reserve may be called again before commit to
 * get more room: what was written is kept (the space may move, like realloc). */
typedef struct jobd_result jobd_result;
struct jobd_result {
  /* Space for a result of up to `capacity` bytes, valid until commit. NULL if
   * it cannot be had; the item has then failed with the reason. */
  char* (*reserve)(jobd_result* self, size_t capacity);
  /* The result is the first `size` (<= capacity) bytes of the reserved space. */
  void (*commit)(jobd_result* self, size_t size);
  /* The item fails with `message` (copied). Other items go on. */
  void (*fail)(jobd_result* self, const char* message);
};

/* A function: `args` holds the item's arguments (one for map). */
typedef void (*jobd_call)(void* state, const jobd_bytes* args, size_t arg_count,
                          jobd_result* result);

typedef struct jobd_function {
  const char* name;    /* 1-64 characters of [A-Za-z0-9_.-] */
  const char* summary; /* one line for `jobctl functions` */
  jobd_call call;
} jobd_function;

typedef struct jobd_plugin {
  uint32_t abi_version;  /* JOBD_PLUGIN_ABI_VERSION */
  uint32_t plugin_size;  /* sizeof(jobd_plugin) */
  const jobd_function* functions;
  size_t function_count;
  size_t function_size;  /* sizeof(jobd_function): the stride of `functions` */
  /* Optional (NULL): called once per worker before its first call. Returns 0
   * and sets *state (passed to every call), or non-zero after writing why into
   * error (error_size bytes, NUL-terminated): the plugin is then unusable. */
  int (*init)(void** state, char* error, size_t error_size);
  /* Optional (NULL): called with that state when the worker stops. */
  void (*fini)(void* state);
} jobd_plugin;

/* The symbol every plugin exports. */
const jobd_plugin* jobd_plugin_v1(void);

/* Convenience: the result is a copy of `size` bytes at `data`. */
static inline void jobd_set_result(jobd_result* result, const char* data, size_t size) {
  char* out = result->reserve(result, size);
  if (out == NULL) return;
  if (size > 0) memcpy(out, data, size);
  result->commit(result, size);
}

#ifdef __cplusplus
}
#endif

#endif /* JOBD_PLUGIN_H_ */
