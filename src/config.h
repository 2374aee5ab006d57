/* chorusd flags and CHORUS_* environment variables (docs/operations.md "Running
 * a node"). */
#ifndef CHORUS_CONFIG_H
#define CHORUS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/limits.h"
#include "common/log.h"

struct chorusd_config {
    uint64_t id;
    char raft[CH_MAX_ADDR_BYTES + 1];
    char http[CH_MAX_ADDR_BYTES + 1];
    char data[PATH_MAX];
    char cluster[4096];
    bool has_cluster;
    bool join;
    char join_addr[CH_MAX_ADDR_BYTES + 1];
    enum ch_log_level log_level;
    uint64_t max_message_bytes;
    uint64_t dedup_window_s;
    uint64_t publish_timeout_ms;
    uint64_t max_connection_buffer;
    uint64_t max_connections;
    uint64_t store_max_bytes;
    uint64_t raft_segment_bytes;
    uint64_t snapshot_threshold;
    uint64_t snapshot_trailing;
    uint64_t raft_log_max_bytes;
    uint64_t election_timeout_ms;
    uint64_t heartbeat_timeout_ms;
};

enum { CONFIG_OK = 0, CONFIG_HELP = 1, CONFIG_ERROR = -1 };

/* Fills cfg from defaults, then CHORUS_* variables, then argv (the flag
 * wins). Returns CONFIG_OK, CONFIG_HELP (--help given) or CONFIG_ERROR with
 * a one-line reason in errmsg (errmsg_size bytes). */
int config_parse(int argc, char **argv, char *const *envp,
                 struct chorusd_config *cfg, char *errmsg, size_t errmsg_size);
/* Prints every flag with its variable and default. */
void config_usage(FILE *out);

#endif
