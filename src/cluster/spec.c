/* Parsing of the --cluster specification and raft addresses (docs/operations.md
 * "Running a node"). */
#include "cluster/cluster.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cluster_addr_valid_ipv4(const char *addr)
{
    char host[INET_ADDRSTRLEN];
    struct in_addr a;
    const char *colon = strrchr(addr, ':');
    char *end;
    long port;

    if (colon == NULL || (size_t)(colon - addr) >= sizeof host || colon == addr)
        return false;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (inet_pton(AF_INET, host, &a) != 1)
        return false;
    if (colon[1] == '\0')
        return false;
    port = strtol(colon + 1, &end, 10);
    return *end == '\0' && port >= 1 && port <= 65535;
}

int cluster_spec_parse(const char *text, struct cluster_member **out,
                       unsigned *n_out, char *errmsg)
{
    struct cluster_member *members = NULL;
    unsigned n = 0;
    const char *p = text;

    if (text == NULL || *text == '\0') {
        snprintf(errmsg, CH_ERRMSG_SIZE, "empty cluster specification");
        return CH_EINVAL;
    }
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[2 * CH_MAX_ADDR_BYTES + 32];
        char *eq, *slash, *idend;
        unsigned long long id;
        struct cluster_member *m;
        void *grown;

        if (len == 0 || len >= sizeof item) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "bad cluster member at offset %zu",
                     (size_t)(p - text));
            goto err;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        eq = strchr(item, '=');
        slash = eq ? strchr(eq, '/') : NULL;
        if (eq == NULL || slash == NULL) {
            snprintf(errmsg, CH_ERRMSG_SIZE,
                     "bad cluster member '%.200s': want ID=RAFT/HTTP", item);
            goto err;
        }
        *eq = '\0';
        *slash = '\0';
        errno = 0;
        id = strtoull(item, &idend, 10);
        if (*item < '0' || *item > '9' || *idend != '\0' || id == 0 ||
            errno == ERANGE) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "bad member id '%.200s'", item);
            goto err;
        }
        if (strlen(eq + 1) > CH_MAX_ADDR_BYTES ||
            !cluster_addr_valid_ipv4(eq + 1)) {
            snprintf(errmsg, CH_ERRMSG_SIZE,
                     "bad raft address '%s' of member %llu: want IPv4:PORT",
                     eq + 1, id);
            goto err;
        }
        if (strlen(slash + 1) > CH_MAX_ADDR_BYTES ||
            !ch_hostport_valid(slash + 1)) {
            snprintf(errmsg, CH_ERRMSG_SIZE,
                     "bad http address '%s' of member %llu: want HOST:PORT",
                     slash + 1, id);
            goto err;
        }
        for (unsigned i = 0; i < n; i++) {
            if (members[i].id == id) {
                snprintf(errmsg, CH_ERRMSG_SIZE, "duplicate member id %llu",
                         id);
                goto err;
            }
        }
        grown = ch_realloc(members, (n + 1) * sizeof *members);
        if (grown == NULL) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "out of memory");
            ch_free(members);
            return CH_ENOMEM;
        }
        members = grown;
        m = &members[n++];
        memset(m, 0, sizeof *m);
        m->id = id;
        snprintf(m->raft, sizeof m->raft, "%s", eq + 1);
        snprintf(m->http, sizeof m->http, "%s", slash + 1);
        m->role = CLUSTER_ROLE_VOTER;
        p += len;
        if (*p == ',') {
            p++;
            if (*p == '\0') {
                snprintf(errmsg, CH_ERRMSG_SIZE,
                         "bad cluster specification: trailing comma");
                goto err;
            }
        }
    }
    *out = members;
    *n_out = n;
    return 0;
err:
    ch_free(members);
    return CH_EINVAL;
}
