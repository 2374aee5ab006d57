/* libFuzzer target: the gateway's WebSocket frame reader (gateway/
 * wsframe.c) on untrusted client bytes. Input: byte 0 picks a split point
 * and a message limit, the rest is the stream. It is read twice: whole,
 * and fed in two parts the way a socket would deliver it (the first part,
 * then everything). Both readings must give the same events; every event's
 * payload lies in the input or the reader's own buffer; text messages and
 * close reasons are valid UTF-8 (checked against an independent
 * validator); the read offset only moves forward and stays in bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gateway/wsframe.h"

#define MAX_EVENTS 4096

struct ev_rec {
    int kind;
    int binary;
    uint16_t code;
    size_t n;
    uint32_t sum;
};

static uint32_t sum_bytes(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static void check_event(const struct ch_ws_reader *r, const char *in, size_t n,
                        const struct ch_ws_event *ev)
{
    if (ev->kind == CH_WS_EV_ERROR) {
        FUZZ_CHECK(ev->code == CH_WS_CLOSE_PROTOCOL ||
                   ev->code == CH_WS_CLOSE_BAD_DATA ||
                   ev->code == CH_WS_CLOSE_TOO_BIG ||
                   ev->code == CH_WS_CLOSE_INTERNAL);
        FUZZ_CHECK(ev->why != NULL);
        return;
    }
    if (ev->n > 0) {
        bool in_input = ev->data >= in && ev->data + ev->n <= in + n;
        bool in_frag = r->frag.data != NULL && ev->data >= r->frag.data &&
                       ev->data + ev->n <= r->frag.data + r->frag.len;
        FUZZ_CHECK(in_input || in_frag);
        fuzz_touch(ev->data, ev->n);
    }
    switch (ev->kind) {
    case CH_WS_EV_MESSAGE:
        FUZZ_CHECK(ev->n <= r->max_msg);
        if (!ev->binary)
            FUZZ_CHECK(fuzz_utf8_ok((const unsigned char *)ev->data, ev->n));
        break;
    case CH_WS_EV_PING:
    case CH_WS_EV_PONG:
        FUZZ_CHECK(ev->n <= CH_WS_MAX_CONTROL);
        break;
    case CH_WS_EV_CLOSE:
        FUZZ_CHECK(ev->n <= CH_WS_MAX_CONTROL);
        FUZZ_CHECK(ev->n != 1);
        if (ev->n >= 2)
            FUZZ_CHECK(
                fuzz_utf8_ok((const unsigned char *)ev->data + 2, ev->n - 2));
        else
            FUZZ_CHECK(ev->code == CH_WS_CLOSE_NO_STATUS);
        break;
    default:
        FUZZ_CHECK(0);
    }
}

/* Reads all events of in[0, n) offered as in[0, split) first, then whole.
 * Returns the number of events recorded; *consumed is the final offset. */
static size_t read_all(const uint8_t *data, size_t n, size_t split,
                       uint64_t max_msg, struct ev_rec *recs, size_t *consumed)
{
    struct ch_ws_reader r;
    struct ch_ws_event ev;
    char *in = malloc(n ? n : 1);
    size_t off = 0, k = 0;
    bool stop = false;

    FUZZ_CHECK(in != NULL);
    memcpy(in, data, n);
    ch_ws_reader_init(&r, max_msg);
    for (int pass = 0; pass < 2 && !stop; pass++) {
        size_t avail = pass == 0 ? split : n;
        for (;;) {
            size_t before = off;
            if (!ch_ws_read(&r, in, avail, &off, &ev)) {
                FUZZ_CHECK(off <= avail);
                break;
            }
            /* an error is raised on a header: nothing is consumed */
            FUZZ_CHECK(
                off <= avail &&
                (ev.kind == CH_WS_EV_ERROR ? off >= before : off > before));
            check_event(&r, in, avail, &ev);
            FUZZ_CHECK(k < MAX_EVENTS);
            recs[k].kind = (int)ev.kind;
            recs[k].binary = ev.binary;
            recs[k].code =
                ev.kind == CH_WS_EV_ERROR || ev.kind == CH_WS_EV_CLOSE ? ev.code
                                                                       : 0;
            recs[k].n = ev.kind == CH_WS_EV_ERROR ? 0 : ev.n;
            recs[k].sum =
                ev.kind == CH_WS_EV_ERROR ? 0 : sum_bytes(ev.data, ev.n);
            k++;
            if (ev.kind == CH_WS_EV_ERROR || ev.kind == CH_WS_EV_CLOSE) {
                stop = true;
                break;
            }
        }
    }
    ch_ws_reader_close(&r);
    free(in);
    *consumed = off;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ev_rec a[MAX_EVENTS], b[MAX_EVENTS];
    static const uint64_t limits[] = {0, 1, 125, 126, 1000, 65536, 1 << 20};
    uint64_t max_msg;
    size_t split, na, nb, ca, cb;

    if (size < 1 || size > (1u << 20))
        return 0;
    max_msg = limits[data[0] % (sizeof limits / sizeof limits[0])];
    data++;
    size--;
    split = size == 0 ? 0 : (size_t)((data[0] * 131u) % (size + 1));
    na = read_all(data, size, size, max_msg, a, &ca);
    nb = read_all(data, size, split, max_msg, b, &cb);
    /* An event in the first part is final there: the whole-input reading
     * sees the same frames, so the same events in the same order. */
    FUZZ_CHECK(na == nb);
    FUZZ_CHECK(ca == cb);
    for (size_t i = 0; i < na; i++) {
        FUZZ_CHECK(a[i].kind == b[i].kind && a[i].binary == b[i].binary &&
                   a[i].code == b[i].code && a[i].n == b[i].n &&
                   a[i].sum == b[i].sum);
    }
    return 0;
}
