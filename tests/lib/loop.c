/* Loop helpers of loop.h. */
#include "loop.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void fired_cb(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

bool test_loop_run_until(uv_loop_t *loop, test_pred pred, void *arg,
                         unsigned max_ms)
{
    uv_timer_t timer;
    bool fired = false;

    assert_int_equal(uv_timer_init(loop, &timer), 0);
    timer.data = &fired;
    assert_int_equal(uv_timer_start(&timer, fired_cb, max_ms, 0), 0);
    while (!pred(arg) && !fired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* lets the timer's close finish */
    return pred(arg);
}

void test_loop_run_for(uv_loop_t *loop, unsigned ms)
{
    (void)test_loop_run_until(loop, never, NULL, ms);
}

static void walk_cb(uv_handle_t *h, void *arg)
{
    unsigned *n = arg;

    (*n)++;
    if (!uv_is_closing(h) && uv_is_active(h) && uv_has_ref(h))
        print_error("handle of type %s still active\n",
                    uv_handle_type_name(uv_handle_get_type(h)));
}

/* How long closing handles and requests in flight may take. */
#define CLOSE_MAX_MS 5000

void test_loop_close(uv_loop_t *loop)
{
    uv_timer_t guard;
    bool fired = false;
    unsigned n = 0;

    /* An unreferenced timer bounds the wait without keeping the loop
     * alive itself. */
    assert_int_equal(uv_timer_init(loop, &guard), 0);
    guard.data = &fired;
    assert_int_equal(uv_timer_start(&guard, fired_cb, CLOSE_MAX_MS, 0), 0);
    uv_unref((uv_handle_t *)&guard);
    while (uv_loop_alive(loop) && !fired)
        uv_run(loop, UV_RUN_ONCE);
    if (fired)
        uv_walk(loop, walk_cb, &n); /* says what kept it alive */
    n = 0;
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    if (uv_loop_close(loop) != 0) {
        uv_walk(loop, walk_cb, &n);
        fail_msg("loop not closed: %u handle(s) left", n);
    }
}
