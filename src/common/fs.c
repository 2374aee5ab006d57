/* File-system helpers. */
#include "common/fs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"

int ch_mkdirs(const char *path, char *errmsg)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);
    struct stat st;

    if (len == 0 || len >= sizeof tmp) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "bad directory path '%.200s'", path);
        return CH_EINVAL;
    }
    memcpy(tmp, path, len + 1);
    /* Each parent in turn, then the path itself (the '\0' at the end). */
    for (char *p = tmp + 1;; p++) {
        char saved = *p;

        if (saved != '/' && saved != '\0')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            snprintf(errmsg, CH_ERRMSG_SIZE, "cannot create '%.200s': %s", tmp,
                     strerror(errno));
            return CH_EIO;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(errmsg, CH_ERRMSG_SIZE, "'%.200s' is not a directory", path);
        return CH_EIO;
    }
    return 0;
}
