/* File-system helpers shared by the modules that own a directory. */
#ifndef CHORUS_COMMON_FS_H
#define CHORUS_COMMON_FS_H

/* Creates `path` and its missing parents (mode 0755), like mkdir -p, and
 * checks that it ends up a directory. Returns 0, CH_EINVAL (empty or too
 * long a path) or CH_EIO, with one line naming the path that failed in
 * errmsg (CH_ERRMSG_SIZE bytes). */
__attribute__((warn_unused_result)) int ch_mkdirs(const char *path,
                                                  char *errmsg);

#endif
