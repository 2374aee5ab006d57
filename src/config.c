/* chorusd flags: one table drives parsing, environment and --help. */
#include "config.h"
#include "common/err.h"
#include "common/limits.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum opt_kind { OPT_U64, OPT_STR, OPT_LOG, OPT_JOIN };

/* X(flag, kind, field, default text, min, max, help) */
#define CONFIG_FLAGS(X)                                                        \
    X("id", OPT_U64, id, "1", 1, UINT32_MAX,                                   \
      "raft server id (>= 1, unique in the cluster)")                          \
    X("raft", OPT_STR, raft, "127.0.0.1:7001", 0, 0,                           \
      "raft listen and advertised address (IPv4:PORT)")                        \
    X("http", OPT_STR, http, "127.0.0.1:8080", 0, 0,                           \
      "gateway (HTTP + WebSocket) listen and advertised address")              \
    X("data", OPT_STR, data, "./chorus-data", 0, 0,                            \
      "data directory: raft log, snapshots and LMDB")                          \
    X("cluster", OPT_STR, cluster, "", 0, 0,                                   \
      "initial voters ID=RAFT/HTTP[,...] (bootstrap on an empty data dir)")    \
    X("join", OPT_JOIN, join_addr, "off", 0, 0,                                \
      "[HTTP] start without bootstrapping; ask that member to add this node "  \
      "(env: an address, on/true/1, or off/false/0)")                          \
    X("log", OPT_LOG, log_level, "info", 0, 0, "error, warn, info, debug")     \
    X("max-message-bytes", OPT_U64, max_message_bytes, "1048576", 1,           \
      64 * 1024 * 1024, "larger publishes are refused")                        \
    X("dedup-window", OPT_U64, dedup_window_s, "120", 0, 86400 * 365,          \
      "publisher message id de-duplication window, seconds")                   \
    X("publish-timeout", OPT_U64, publish_timeout_ms, "5000", 1, 3600000,      \
      "a publish not committed by then fails, ms")                             \
    X("max-connection-buffer", OPT_U64, max_connection_buffer, "4194304",      \
      65536, 1ULL << 32,                                                       \
      "bytes queued for one client before it is switched to store reads")      \
    X("max-connections", OPT_U64, max_connections, "20000", 1, 1000000,        \
      "client connections at once; more are refused (the file descriptor "     \
      "limit is raised to fit)")                                               \
    X("store-max-bytes", OPT_U64, store_max_bytes, "68719476736", 1024 * 1024, \
      1ULL << 44,                                                              \
      "LMDB map size: the store's size limit (virtual until used)")            \
    X("snapshot-threshold", OPT_U64, snapshot_threshold, "1024", 2, 1 << 24,   \
      "raft entries between snapshots")                                        \
    X("snapshot-trailing", OPT_U64, snapshot_trailing, "512", 1, 1 << 24,      \
      "raft entries kept after a snapshot")                                    \
    X("raft-log-max-bytes", OPT_U64, raft_log_max_bytes, "67108864",           \
      2 * 1024 * 1024, 1ULL << 40,                                             \
      "raft log held in memory: a snapshot is taken when the entries since "   \
      "the last one reach half of it, and fewer are kept after it")            \
    X("raft-segment-bytes", OPT_U64, raft_segment_bytes, "67108864",           \
      4 * 1024 * 1024, 1ULL << 30,                                             \
      "raft log segment size (preallocated; larger means rarer switches)")     \
    X("election-timeout", OPT_U64, election_timeout_ms, "500", 10, 60000,      \
      "raft election timeout, ms")                                             \
    X("heartbeat-timeout", OPT_U64, heartbeat_timeout_ms, "50", 5, 30000,      \
      "raft heartbeat interval, ms (below the election timeout)")

struct opt {
    const char *flag;
    enum opt_kind kind;
    size_t offset;
    size_t size;
    const char *def;
    uint64_t min;
    uint64_t max;
    const char *help;
};

static const struct opt opts[] = {
#define X_OPT(flag, kind, field, def, min, max, help)                          \
    {flag,                                                                     \
     kind,                                                                     \
     offsetof(struct chorusd_config, field),                                   \
     sizeof(((struct chorusd_config *)0)->field),                              \
     def,                                                                      \
     (uint64_t)(min),                                                          \
     (uint64_t)(max),                                                          \
     help},
    CONFIG_FLAGS(X_OPT)
#undef X_OPT
};

#define N_OPTS (sizeof opts / sizeof opts[0])

void config_usage(FILE *out)
{
    fprintf(out, "usage: chorusd [--flag value]...\n\n"
                 "A Chorus node: raft-replicated message store with a "
                 "WebSocket/HTTP gateway.\nEvery flag has an environment "
                 "variable CHORUS_<FLAG>; the flag wins.\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        char env[64];
        size_t k = 0;
        for (const char *p = opts[i].flag; *p && k + 1 < sizeof env; p++)
            env[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        env[k] = '\0';
        fprintf(out, "  --%-24s %s\n  %-26s env CHORUS_%s, default: %s\n",
                opts[i].flag, opts[i].help, "", env, opts[i].def);
    }
    fprintf(out, "  --%-24s print this help and exit\n", "help");
}

static int set_value(struct chorusd_config *cfg, const struct opt *o,
                     const char *value, const char *source, char *errmsg,
                     size_t errmsg_size)
{
    char *field = (char *)cfg + o->offset;

    switch (o->kind) {
    case OPT_U64: {
        char *end;
        unsigned long long v;
        if (value[0] == '\0' || value[0] == '-' ||
            !isdigit((unsigned char)value[0]))
            goto bad;
        v = strtoull(value, &end, 10);
        if (*end != '\0' || v < o->min || v > o->max)
            goto bad;
        *(uint64_t *)(void *)field = v;
        return 0;
    bad:
        snprintf(errmsg, errmsg_size,
                 "bad value '%s' for %s%s: want a number from %llu to %llu",
                 value, source, o->flag, (unsigned long long)o->min,
                 (unsigned long long)o->max);
        return CONFIG_ERROR;
    }
    case OPT_STR:
        if (strlen(value) >= o->size) {
            snprintf(errmsg, errmsg_size, "value for %s%s is too long", source,
                     o->flag);
            return CONFIG_ERROR;
        }
        memcpy(field, value, strlen(value) + 1);
        if (strcmp(o->flag, "cluster") == 0)
            cfg->has_cluster = value[0] != '\0';
        if (value[0] == '\0' && strcmp(o->flag, "cluster") != 0) {
            snprintf(errmsg, errmsg_size, "empty value for %s%s", source,
                     o->flag);
            return CONFIG_ERROR;
        }
        return 0;
    case OPT_LOG:
        if (ch_log_parse_level(value, &cfg->log_level) != 0) {
            snprintf(errmsg, errmsg_size,
                     "bad value '%s' for %s%s: want error, warn, info or "
                     "debug",
                     value, source, o->flag);
            return CONFIG_ERROR;
        }
        return 0;
    case OPT_JOIN:
        cfg->join = true;
        if (strlen(value) >= sizeof cfg->join_addr) {
            snprintf(errmsg, errmsg_size, "value for %s%s is too long", source,
                     o->flag);
            return CONFIG_ERROR;
        }
        if (strcmp(value, "off") == 0 || strcmp(value, "false") == 0 ||
            strcmp(value, "0") == 0 || strcmp(value, "no") == 0) {
            cfg->join = false;
            cfg->join_addr[0] = '\0';
            return 0;
        }
        if (strcmp(value, "1") == 0 || strcmp(value, "true") == 0 ||
            strcmp(value, "on") == 0 || strcmp(value, "yes") == 0)
            value = "";
        memcpy(cfg->join_addr, value, strlen(value) + 1);
        return 0;
    }
    return CONFIG_ERROR;
}

static const struct opt *find_opt(const char *name, size_t n)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        if (strlen(opts[i].flag) == n && strncmp(opts[i].flag, name, n) == 0)
            return &opts[i];
    }
    return NULL;
}

int config_parse(int argc, char **argv, char *const *envp,
                 struct chorusd_config *cfg, char *errmsg, size_t errmsg_size)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTS; i++) {
        if (opts[i].kind == OPT_JOIN)
            continue;
        if (set_value(cfg, &opts[i], opts[i].def, "--", errmsg, errmsg_size) !=
                0 &&
            opts[i].kind != OPT_STR)
            return CONFIG_ERROR;
    }
    cfg->has_cluster = false;
    cfg->cluster[0] = '\0';

    /* Environment: CHORUS_<FLAG>; unknown CHORUS_* variables are ignored. */
    for (char *const *e = envp; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        char flag[64];
        size_t n;
        const struct opt *o;

        if (strncmp(*e, "CHORUS_", 7) != 0 || eq == NULL)
            continue;
        n = (size_t)(eq - *e) - 7;
        if (n == 0 || n >= sizeof flag)
            continue;
        for (size_t k = 0; k < n; k++) {
            char ch = (*e)[7 + k];
            flag[k] = ch == '_' ? '-' : (char)tolower((unsigned char)ch);
        }
        o = find_opt(flag, n);
        if (o == NULL)
            continue;
        if (o->kind == OPT_JOIN && eq[1] == '\0')
            continue; /* CHORUS_JOIN= (empty) means off */
        if (set_value(cfg, o, eq + 1, "CHORUS_ env for --", errmsg,
                      errmsg_size) != 0)
            return CONFIG_ERROR;
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *name, *eq, *value = NULL;
        const struct opt *o;
        size_t n;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return CONFIG_HELP;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(errmsg, errmsg_size, "unexpected argument '%s'", arg);
            return CONFIG_ERROR;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        n = eq ? (size_t)(eq - name) : strlen(name);
        o = find_opt(name, n);
        if (o == NULL) {
            snprintf(errmsg, errmsg_size, "unknown flag '%s' (see --help)",
                     arg);
            return CONFIG_ERROR;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (o->kind == OPT_JOIN) {
            /* --join takes an optional address. */
            if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                value = argv[++i];
            else
                value = "";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(errmsg, errmsg_size, "flag --%s needs a value", o->flag);
            return CONFIG_ERROR;
        }
        if (set_value(cfg, o, value, "--", errmsg, errmsg_size) != 0)
            return CONFIG_ERROR;
    }
    if (cfg->heartbeat_timeout_ms >= cfg->election_timeout_ms) {
        snprintf(errmsg, errmsg_size,
                 "--heartbeat-timeout must be below --election-timeout");
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}
