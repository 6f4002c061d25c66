/* An example jobd plugin, in plain C: text functions, with per-worker state.
 *
 *   jobctl map --plugin build/lib/libjobd_text.so upper hello world
 *
 * or, for every worker of a pool, in jobd.yaml:
 *
 *   pools:
 *     cpu:
 *       plugins: [/usr/local/lib/libjobd_text.so]
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jobd/plugin.h>

/* Per-worker state, made by init: how many items this worker has seen. */
struct state {
  unsigned long long items;
};

static int init(void** state, char* error, size_t error_size) {
  struct state* s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(error, error_size, "out of memory");
    return 1;
  }
  *state = s;
  return 0;
}

static void fini(void* state) { free(state); }

/* The item in capitals, written in place into the result (no extra copy). */
static void upper(void* state, const jobd_bytes* args, size_t count, jobd_result* result) {
  ((struct state*)state)->items++;
  char* out = result->reserve(result, args[0].size);
  if (out == NULL) return;
  for (size_t i = 0; i < args[0].size; ++i) out[i] = (char)toupper((unsigned char)args[0].data[i]);
  result->commit(result, args[0].size);
}

/* How many whitespace-separated words the item has. */
static void words(void* state, const jobd_bytes* args, size_t count, jobd_result* result) {
  ((struct state*)state)->items++;
  size_t words = 0;
  int in_word = 0;
  for (size_t i = 0; i < args[0].size; ++i) {
    const int space = isspace((unsigned char)args[0].data[i]);
    if (!space && !in_word) words++;
    in_word = !space;
  }
  char text[32];
  jobd_set_result(result, text, (size_t)snprintf(text, sizeof text, "%zu", words));
}

/* How many items this worker's copy of the plugin has seen, this one included:
 * init ran once per worker, and the state lives as long as the worker. */
static void seen(void* state, const jobd_bytes* args, size_t count, jobd_result* result) {
  char text[32];
  jobd_set_result(result, text,
                  (size_t)snprintf(text, sizeof text, "%llu", ++((struct state*)state)->items));
}

/* The item repeated N times, N being a number before the first ':' ("3:ab"
 * gives "ababab"): a way to make large results from small items. */
static void repeat(void* state, const jobd_bytes* args, size_t count, jobd_result* result) {
  const char* colon = memchr(args[0].data, ':', args[0].size);
  if (colon == NULL) {
    result->fail(result, "repeat: expected N:TEXT");
    return;
  }
  const size_t times = strtoull(args[0].data, NULL, 10);
  const char* text = colon + 1;
  const size_t length = args[0].size - (size_t)(text - args[0].data);
  if (length != 0 && times > ((size_t)1 << 32) / length) {
    result->fail(result, "repeat: the result would exceed 4 GiB");
    return;
  }
  char* out = result->reserve(result, times * length);
  if (out == NULL) return;
  for (size_t i = 0; i < times; ++i) memcpy(out + i * length, text, length);
  result->commit(result, times * length);
}

/* Dereferences NULL: shows that a crashing plugin costs a retry, not the job. */
static void segfault(void* state, const jobd_bytes* args, size_t count, jobd_result* result) {
  if (args[0].size >= 2 && args[0].data[0] == 'o' && args[0].data[1] == 'k') {
    jobd_set_result(result, args[0].data, args[0].size);
    return;
  }
  *(volatile int*)NULL = 1;
}

static const jobd_function functions[] = {
    {"upper", "the item in capital letters", upper},
    {"words", "how many whitespace-separated words the item has", words},
    {"seen", "how many items this worker's plugin instance has seen", seen},
    {"repeat", "N:TEXT -> TEXT repeated N times", repeat},
    {"segfault", "crashes its worker (items starting with 'ok' are echoed)", segfault},
};

static const jobd_plugin plugin = {
    JOBD_PLUGIN_ABI_VERSION, sizeof(jobd_plugin), functions, sizeof functions / sizeof functions[0],
    sizeof(jobd_function), init, fini,
};

const jobd_plugin* jobd_plugin_v1(void) { return &plugin; }
