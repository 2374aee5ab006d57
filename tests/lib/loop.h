/* Helpers for tests that drive a libuv loop (the loop's own clock; every
 * wait is bounded). */
#ifndef CHORUS_TESTS_LIB_LOOP_H
#define CHORUS_TESTS_LIB_LOOP_H

#include <stdbool.h>

#include <uv.h>

typedef bool (*test_pred)(void *arg);

/* Runs loop one turn at a time until pred(arg) holds or max_ms pass.
 * Returns pred(arg). */
bool test_loop_run_until(uv_loop_t *loop, test_pred pred, void *arg,
                         unsigned max_ms);
/* Runs loop for ms milliseconds (e.g. to see that nothing happens). */
void test_loop_run_for(uv_loop_t *loop, unsigned ms);
/* Runs loop until every handle closed (bounded) and closes it; fails the
 * test (cmocka) if it cannot be closed. */
void test_loop_close(uv_loop_t *loop);

#endif
