/* libFuzzer target: one WebSocket text frame through the client command
 * parser gw_proto_parse (gateway/proto.c, docs/protocol.md), plus
 * gw__msg_is_text and gw__msg_encode on the same bytes. Input: the frame
 * payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/limits.h"
#include "common/validate.h"
#include "fuzz_util.h"
#include "gateway/gw_int.h"

static const char *frame_lo, *frame_hi;

/* A field must lie inside the frame (or be empty). */
static void check_field(struct ch_bytes b)
{
    if (b.n == 0)
        return;
    FUZZ_CHECK(b.p >= frame_lo && b.p + b.n <= frame_hi);
    fuzz_touch(b.p, b.n);
}

static void check_cmd(const struct gw_cmd *cmd, size_t max_body)
{
    check_field(cmd->path);
    check_field(cmd->msgid);
    check_field(cmd->header);
    check_field(cmd->body);
    FUZZ_CHECK(ch_valid_topic(cmd->path.p, cmd->path.n));
    switch (cmd->type) {
    case GW_CMD_PUBLISH:
        FUZZ_CHECK(cmd->body.n <= max_body);
        FUZZ_CHECK(cmd->msgid.n == 0 ||
                   ch_valid_id(cmd->msgid.p, cmd->msgid.n));
        FUZZ_CHECK(cmd->header.n <= CH_MAX_HEADER_BYTES);
        if (cmd->header.n > 0) {
            json_t *j = json_loadb(cmd->header.p, cmd->header.n, 0, NULL);
            FUZZ_CHECK(j != NULL && json_is_object(j));
            json_decref(j);
        }
        FUZZ_CHECK(!cmd->has_start && !cmd->has_max);
        break;
    case GW_CMD_SUBSCRIBE:
        FUZZ_CHECK(!cmd->has_max || cmd->has_start);
        FUZZ_CHECK(!cmd->has_max || cmd->max >= 0);
        FUZZ_CHECK(cmd->body.n == 0 && cmd->header.n == 0);
        break;
    case GW_CMD_CANCEL:
        FUZZ_CHECK(!cmd->has_start && !cmd->has_max);
        FUZZ_CHECK(cmd->body.n == 0 && cmd->header.n == 0);
        break;
    default:
        FUZZ_CHECK(!"unknown command type");
    }
}

static void encode_published(const struct gw_cmd *cmd)
{
    struct ch_msg m;
    struct ch_buf out;

    memset(&m, 0, sizeof m);
    m.path = cmd->path;
    m.user.p = "fuzz";
    m.user.n = 4;
    m.app.p = "app";
    m.app.n = 3;
    m.msgid = cmd->msgid;
    m.header = cmd->header;
    m.body = cmd->body;
    m.seq = 1;
    m.time = 1700000000;
    ch_buf_init(&out);
    FUZZ_CHECK(gw__msg_encode(&m, &out) == 0);
    /* The wire form starts with "<path>,<seq>,". */
    FUZZ_CHECK(out.len > m.path.n &&
               memcmp(out.data, m.path.p, m.path.n) == 0 &&
               out.data[m.path.n] == ',');
    ch_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_bodies[] = {0, 7, 1024,
                                        CH_DEFAULT_MAX_MESSAGE_BYTES};
    const char *frame = (const char *)data;
    int prev_rv = -1;
    struct ch_msg m;
    size_t half;

    frame_lo = frame;
    frame_hi = frame + size;
    for (size_t i = 0; i < sizeof max_bodies / sizeof max_bodies[0]; i++) {
        struct gw_cmd cmd;
        const char *why = NULL;
        int rv = gw_proto_parse(frame, size, max_bodies[i], &cmd, &why);

        FUZZ_CHECK(rv == 0 || rv == GW_PARSE_BAD_REQUEST ||
                   rv == GW_PARSE_BAD_SEND);
        if (rv == 0) {
            check_cmd(&cmd, max_bodies[i]);
            if (cmd.type == GW_CMD_PUBLISH)
                encode_published(&cmd);
        } else {
            FUZZ_CHECK(why != NULL && why[0] != '\0');
            fuzz_touch(why, strlen(why));
            /* For a refused publish the parsed path/msgid are reported. */
            check_field(cmd.path);
            check_field(cmd.msgid);
        }
        /* A larger body limit never turns an accepted frame into a refused
         * one. */
        if (prev_rv == 0)
            FUZZ_CHECK(rv == 0);
        prev_rv = rv;
    }

    /* gw__msg_is_text against an independent UTF-8 check, split at every
     * position class: empty header, middle, empty body. */
    half = size / 2;
    memset(&m, 0, sizeof m);
    for (int k = 0; k < 3; k++) {
        size_t h = k == 0 ? 0 : k == 1 ? half : size;
        m.header.p = frame;
        m.header.n = h;
        m.body.p = frame + h;
        m.body.n = size - h;
        FUZZ_CHECK(gw__msg_is_text(&m) ==
                   (fuzz_utf8_ok(data, h) && fuzz_utf8_ok(data + h, size - h)));
    }
    FUZZ_CHECK(ch_valid_utf8(frame, size) == (bool)fuzz_utf8_ok(data, size));
    return 0;
}
