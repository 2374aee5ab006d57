/* The WebSocket opening handshake (RFC 6455 §4): see ws_handshake.h. */
#include "common/ws_handshake.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* §1.3: appended to the key before hashing. */
static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ch_ws_make_key(char *key)
{
    unsigned char raw[16];

    if (RAND_bytes(raw, (int)sizeof(raw)) != 1)
        return CH_EIO;
    /* 16 bytes encode to 24 characters + NUL. */
    if (EVP_EncodeBlock((unsigned char *)key, raw, (int)sizeof(raw)) != 24)
        return CH_EIO;
    return 0;
}

int ch_ws_accept_for_key(const char *key, char *accept)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char joined[CH_WS_MAX_CLIENT_KEY + sizeof(WS_GUID)];
    int n;

    if (strlen(key) > CH_WS_MAX_CLIENT_KEY)
        return CH_EINVAL;
    n = snprintf(joined, sizeof(joined), "%s%s", key, WS_GUID);
    if (n < 0 || (size_t)n >= sizeof(joined))
        return CH_EIO;
    if (EVP_Digest(joined, (size_t)n, md, &md_len, EVP_sha1(), NULL) != 1 ||
        md_len != 20)
        return CH_EIO;
    /* 20 bytes encode to 28 characters + NUL. */
    if (EVP_EncodeBlock((unsigned char *)accept, md, (int)md_len) != 28)
        return CH_EIO;
    return 0;
}

int ch_ws_format_upgrade(char *buf, size_t size, const char *host_header,
                         const char *path, const char *key)
{
    int n = snprintf(buf, size,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     path, host_header, key);
    if (n < 0 || (size_t)n >= size)
        return CH_ETOOBIG;
    return n;
}

int ch_ws_format_accepted(char *buf, size_t size, const char *key)
{
    char accept[CH_WS_KEY_SIZE];
    int rv = ch_ws_accept_for_key(key, accept);
    int n;

    if (rv != 0)
        return rv;
    n = snprintf(buf, size,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n"
                 "\r\n",
                 accept);
    if (n < 0 || (size_t)n >= size)
        return CH_ETOOBIG;
    return n;
}

int ch_ws_handshake_init(struct ch_ws_handshake *hs, const char *key)
{
    hs->len = 0;
    return ch_ws_accept_for_key(key, hs->accept_expected);
}

/* Headers of the upgrade response, gathered by http_parser callbacks. */
struct hs_parse {
    const char *field; /* last header name (points into the head) */
    size_t field_n;
    bool has_upgrade;  /* Upgrade: websocket */
    bool has_accept;   /* Sec-WebSocket-Accept present */
    bool is_accept_ok; /* ... and equal to the expected value */
    const char *expected;
    bool is_done;
};

static bool field_is(const struct hs_parse *p, const char *name)
{
    return p->field_n == strlen(name) &&
           strncasecmp(p->field, name, p->field_n) == 0;
}

static int hs_on_header_field(http_parser *hp, const char *at, size_t n)
{
    struct hs_parse *p = hp->data;

    p->field = at;
    p->field_n = n;
    return 0;
}

static int hs_on_header_value(http_parser *hp, const char *at, size_t n)
{
    struct hs_parse *p = hp->data;

    if (field_is(p, "Upgrade")) {
        p->has_upgrade = n == 9 && strncasecmp(at, "websocket", 9) == 0;
    } else if (field_is(p, "Sec-WebSocket-Accept")) {
        p->has_accept = true;
        p->is_accept_ok =
            n == strlen(p->expected) && memcmp(at, p->expected, n) == 0;
    }
    return 0;
}

static int hs_on_headers_complete(http_parser *hp)
{
    struct hs_parse *p = hp->data;

    p->is_done = true;
    /* 1: no body is expected; the rest of the stream is frames. */
    return 1;
}

int ch_ws_handshake_feed(struct ch_ws_handshake *hs, const char *data, size_t n,
                         bool *done, size_t *used, char *errmsg)
{
    http_parser_settings settings;
    http_parser hp;
    struct hs_parse p;
    const char *end;
    size_t old_len = hs->len;
    size_t head_len;
    size_t parsed;

    *done = false;
    *used = n;
    if (n > sizeof(hs->buf) - 1 - hs->len)
        n = sizeof(hs->buf) - 1 - hs->len;
    memcpy(hs->buf + hs->len, data, n);
    hs->len += n;
    hs->buf[hs->len] = '\0';
    end = memmem(hs->buf, hs->len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (hs->len == sizeof(hs->buf) - 1) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "upgrade response head too large");
            return CH_ETOOBIG;
        }
        return 0;
    }
    head_len = (size_t)(end - hs->buf) + 4;
    *used = head_len - old_len;

    memset(&settings, 0, sizeof(settings));
    settings.on_header_field = hs_on_header_field;
    settings.on_header_value = hs_on_header_value;
    settings.on_headers_complete = hs_on_headers_complete;
    memset(&p, 0, sizeof(p));
    p.expected = hs->accept_expected;
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &p;
    parsed = http_parser_execute(&hp, &settings, hs->buf, head_len);
    if (!p.is_done || (HTTP_PARSER_ERRNO(&hp) != HPE_OK && parsed < head_len)) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad upgrade response: %s",
                 http_errno_description(HTTP_PARSER_ERRNO(&hp)));
        return CH_EPROTO;
    }
    if (hp.status_code != 101) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "upgrade refused: HTTP %u",
                 hp.status_code);
        return CH_EPROTO;
    }
    if (!p.has_upgrade) {
        snprintf(errmsg, CH_ERRMSG_SIZE,
                 "upgrade response lacks Upgrade: websocket");
        return CH_EPROTO;
    }
    if (!p.has_accept || !p.is_accept_ok) {
        snprintf(errmsg, CH_ERRMSG_SIZE,
                 "upgrade response has a wrong Sec-WebSocket-Accept");
        return CH_EPROTO;
    }
    *done = true;
    return 0;
}
