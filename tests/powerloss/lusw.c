/* chorus-lusw: a FUSE pass-through file system that loses unsynced writes
 * on command — the state a disk is in after the power goes. For the
 * power-loss tests (tests/powerloss/README.md, tests/chaos).
 *
 *   chorus-lusw BACKING_DIR MOUNTPOINT
 *
 * MOUNTPOINT shows BACKING_DIR. Every file's writes, truncations and
 * fallocations since its last fsync/fdatasync (or, for a file opened
 * O_DSYNC/O_SYNC, its last write) are held as an undo log:
 * before a byte below the file's durable size is overwritten (or cut off)
 * the first time, its old value is saved. Writing "drop" to the virtual
 * file MOUNTPOINT/.lusw applies every undo log newest-first and truncates
 * each file back to its durable size: what a power cut leaves. fsync and
 * fdatasync (which the kernel also sends after O_SYNC/O_DSYNC writes)
 * forget the file's undo log. Names (create, rename, unlink, mkdir) take
 * effect at once and survive a drop. Single-threaded (-s), foreground. */
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define CTL_NAME "/.lusw"
#define CTL_FH UINT64_MAX
/* Undo bytes held at most; past it a write fails with EIO. */
#define UNDO_MAX_BYTES (1ull << 30)
/* Files tracked at most (each holds one descriptor). */
#define FILES_MAX 4096

struct undo {
    struct undo *prev; /* older */
    off_t off;
    size_t len;
    unsigned char data[];
};

/* A file written since it was last synced (or since the mount). */
struct fstate {
    dev_t dev;
    ino_t ino;
    int fd;            /* O_RDWR on the backing file, follows renames */
    off_t durable;     /* size at the last sync */
    struct undo *last; /* newest first */
};

static int backing = -1;
static struct fstate *files[FILES_MAX];
static unsigned n_files;
static unsigned long long undo_bytes;
static unsigned long long n_drops;

static const char *rel(const char *path)
{
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

static void undo_free(struct fstate *f)
{
    while (f->last != NULL) {
        struct undo *u = f->last;
        f->last = u->prev;
        undo_bytes -= u->len;
        free(u);
    }
}

static struct fstate *find(dev_t dev, ino_t ino, unsigned *at)
{
    for (unsigned i = 0; i < n_files; i++) {
        if (files[i]->ino == ino && files[i]->dev == dev) {
            if (at != NULL)
                *at = i;
            return files[i];
        }
    }
    return NULL;
}

static void forget(unsigned i)
{
    struct fstate *f = files[i];

    undo_free(f);
    close(f->fd);
    free(f);
    files[i] = files[--n_files];
}

/* The state of the file open as fd (its size now is durable if new). */
static struct fstate *state_of(int fd, int *err)
{
    struct stat st;
    struct fstate *f;
    char proc[64];

    if (fstat(fd, &st) != 0) {
        *err = -errno;
        return NULL;
    }
    f = find(st.st_dev, st.st_ino, NULL);
    if (f != NULL)
        return f;
    if (n_files == FILES_MAX) {
        fprintf(stderr, "chorus-lusw: more than %d files written\n", FILES_MAX);
        *err = -EIO;
        return NULL;
    }
    f = calloc(1, sizeof *f);
    if (f == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    /* Our own read-write descriptor, whatever fd's mode. */
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    f->fd = open(proc, O_RDWR | O_CLOEXEC);
    if (f->fd < 0) {
        *err = -errno;
        free(f);
        return NULL;
    }
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->durable = st.st_size;
    files[n_files++] = f;
    return f;
}

/* Saves the bytes in [off, off + len) below the durable size. */
static int save(struct fstate *f, off_t off, size_t len)
{
    struct undo *u;
    ssize_t n;

    if (off >= f->durable || len == 0)
        return 0;
    if ((off_t)len > f->durable - off)
        len = (size_t)(f->durable - off);
    if (undo_bytes + len > UNDO_MAX_BYTES) {
        fprintf(stderr, "chorus-lusw: undo log full (%llu bytes)\n",
                undo_bytes);
        return -EIO;
    }
    u = malloc(sizeof *u + len);
    if (u == NULL)
        return -ENOMEM;
    n = pread(f->fd, u->data, len, off);
    if (n < 0) {
        free(u);
        return -errno;
    }
    u->off = off;
    u->len = (size_t)n; /* the file may be shorter now */
    u->prev = f->last;
    f->last = u;
    undo_bytes += u->len;
    return 0;
}

static void synced(struct fstate *f)
{
    struct stat st;

    undo_free(f);
    if (fstat(f->fd, &st) == 0)
        f->durable = st.st_size;
}

/* The power goes: every file back to its last sync. */
static int drop_all(void)
{
    int rv = 0;

    for (unsigned i = 0; i < n_files; i++) {
        struct fstate *f = files[i];
        for (struct undo *u = f->last; u != NULL; u = u->prev) {
            if (pwrite(f->fd, u->data, u->len, u->off) != (ssize_t)u->len)
                rv = -EIO;
        }
        if (ftruncate(f->fd, f->durable) != 0)
            rv = -EIO;
        undo_free(f);
    }
    n_drops++;
    return rv;
}

static void sync_all(void)
{
    for (unsigned i = 0; i < n_files; i++)
        synced(files[i]);
}

/* After unlink or rename over a file: a state whose file is gone goes. */
static void forget_if_gone(dev_t dev, ino_t ino)
{
    unsigned at;
    struct stat st;
    struct fstate *f = find(dev, ino, &at);

    if (f != NULL && fstat(f->fd, &st) == 0 && st.st_nlink == 0)
        forget(at);
}

/* ---- operations ---------------------------------------------------------- */

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->use_ino = 1;
    cfg->attr_timeout = 0;
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->hard_remove = 1;
    cfg->nullpath_ok = 1;
    cfg->kernel_cache = 0;
    return NULL;
}

static int op_getattr(const char *path, struct stat *st,
                      struct fuse_file_info *fi)
{
    if (path != NULL && strcmp(path, CTL_NAME) == 0) {
        memset(st, 0, sizeof *st);
        st->st_mode = S_IFREG | 0600;
        st->st_nlink = 1;
        st->st_size = 0;
        return 0;
    }
    if (fi != NULL && fi->fh != CTL_FH)
        return fstat((int)fi->fh, st) == 0 ? 0 : -errno;
    if (path == NULL)
        return -ENOENT;
    return fstatat(backing, rel(path), st, AT_SYMLINK_NOFOLLOW) == 0 ? 0
                                                                     : -errno;
}

static int op_opendir(const char *path, struct fuse_file_info *fi)
{
    int fd = openat(backing, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
                      off_t off, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags)
{
    int fd = dup((int)fi->fh);
    DIR *d;
    struct dirent *e;

    (void)path;
    (void)off;
    (void)flags;
    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -errno;
    }
    rewinddir(d); /* the dup shares the offset */
    while ((e = readdir(d)) != NULL) {
        if (fill(buf, e->d_name, NULL, 0, 0) != 0)
            break;
    }
    closedir(d);
    return 0;
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close((int)fi->fh);
    return 0;
}

static int op_mkdir(const char *path, mode_t mode)
{
    return mkdirat(backing, rel(path), mode) == 0 ? 0 : -errno;
}

static int op_rmdir(const char *path)
{
    return unlinkat(backing, rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno;
}

static int op_unlink(const char *path)
{
    struct stat st;

    if (fstatat(backing, rel(path), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    if (unlinkat(backing, rel(path), 0) != 0)
        return -errno;
    forget_if_gone(st.st_dev, st.st_ino);
    return 0;
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
    struct stat st;
    bool replaced;

    if (flags != 0 && flags != RENAME_NOREPLACE)
        return -EINVAL;
    replaced = fstatat(backing, rel(to), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (replaced && flags == RENAME_NOREPLACE)
        return -EEXIST;
    if (renameat(backing, rel(from), backing, rel(to)) != 0)
        return -errno;
    if (replaced)
        forget_if_gone(st.st_dev, st.st_ino);
    return 0;
}

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (fi != NULL && fi->fh != CTL_FH)
        return fchmod((int)fi->fh, mode) == 0 ? 0 : -errno;
    return fchmodat(backing, rel(path), mode, 0) == 0 ? 0 : -errno;
}

static int op_utimens(const char *path, const struct timespec tv[2],
                      struct fuse_file_info *fi)
{
    if (fi != NULL && fi->fh != CTL_FH)
        return futimens((int)fi->fh, tv) == 0 ? 0 : -errno;
    return utimensat(backing, rel(path), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0
                                                                       : -errno;
}

/* Cuts or extends the file open as fd to size, saving what is cut. */
static int resize(int fd, off_t size)
{
    struct stat st;
    struct fstate *f;
    int err = 0;

    if (fstat(fd, &st) != 0)
        return -errno;
    f = state_of(fd, &err);
    if (f == NULL)
        return err;
    if (size < st.st_size) {
        err = save(f, size, (size_t)(st.st_size - size));
        if (err != 0)
            return err;
    }
    return ftruncate(fd, size) == 0 ? 0 : -errno;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    int fd;
    int rv;

    if (fi != NULL && fi->fh != CTL_FH)
        return resize((int)fi->fh, size);
    if (path != NULL && strcmp(path, CTL_NAME) == 0)
        return 0;
    fd = openat(backing, rel(path), O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rv = resize(fd, size);
    close(fd);
    return rv;
}

static int open_backing(const char *path, int flags, mode_t mode,
                        struct fuse_file_info *fi)
{
    int fd;
    int rv;

    /* O_DIRECT's alignment rules are the kernel's business above us;
     * O_TRUNC is done by resize so the cut is saved. */
    fd = openat(backing, rel(path), (flags & ~(O_DIRECT | O_TRUNC)) | O_CLOEXEC,
                mode);
    if (fd < 0)
        return -errno;
    if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
        rv = resize(fd, 0);
        if (rv != 0) {
            close(fd);
            return rv;
        }
    }
    fi->fh = (uint64_t)fd;
    return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
    if (strcmp(path, CTL_NAME) == 0) {
        fi->fh = CTL_FH;
        fi->direct_io = 1;
        return 0;
    }
    return open_backing(path, fi->flags, 0, fi);
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (strcmp(path, CTL_NAME) == 0)
        return -EEXIST;
    return open_backing(path, fi->flags | O_CREAT, mode, fi);
}

static int op_read(const char *path, char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    ssize_t n;

    (void)path;
    if (fi->fh == CTL_FH) {
        char line[160];
        int len = snprintf(line, sizeof line,
                           "files=%u unsynced_bytes=%llu drops=%llu\n", n_files,
                           undo_bytes, n_drops);
        if (off >= len)
            return 0;
        if ((size_t)(len - off) < size)
            size = (size_t)(len - off);
        memcpy(buf, line + off, size);
        return (int)size;
    }
    n = pread((int)fi->fh, buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct fstate *f;
    ssize_t n;
    int err = 0;

    (void)path;
    if (fi->fh == CTL_FH) {
        size_t k = size;
        while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == ' '))
            k--;
        if (k == 4 && memcmp(buf, "drop", 4) == 0)
            err = drop_all();
        else if (k == 4 && memcmp(buf, "sync", 4) == 0)
            sync_all();
        else
            return -EINVAL;
        return err != 0 ? err : (int)size;
    }
    f = state_of((int)fi->fh, &err);
    if (f == NULL)
        return err;
    err = save(f, off, size);
    if (err != 0)
        return err;
    n = pwrite((int)fi->fh, buf, size, off);
    if (n < 0)
        return -errno;
    /* A write to a file opened O_DSYNC/O_SYNC is durable when the call
     * returns (the kernel does not send FUSE an fsync after an
     * asynchronous O_DIRECT write): the whole file counts as synced. */
    if ((fcntl((int)fi->fh, F_GETFL) & (O_DSYNC | O_SYNC)) != 0)
        synced(f);
    return (int)n;
}

static int op_fallocate(const char *path, int mode, off_t off, off_t len,
                        struct fuse_file_info *fi)
{
    (void)path;
    if (fi == NULL || fi->fh == CTL_FH)
        return -EOPNOTSUPP;
    if ((mode & ~FALLOC_FL_KEEP_SIZE) != 0)
        return -EOPNOTSUPP;
    /* Growing needs no saved bytes: a drop truncates to the durable size. */
    return fallocate((int)fi->fh, mode, off, len) == 0 ? 0 : -errno;
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    struct stat st;
    struct fstate *f;

    (void)path;
    (void)datasync;
    if (fi == NULL || fi->fh == CTL_FH)
        return 0;
    /* The backing file need not reach its disk: what counts is that this
     * file system will not drop it. */
    if (fstat((int)fi->fh, &st) != 0)
        return -errno;
    f = find(st.st_dev, st.st_ino, NULL);
    if (f != NULL)
        synced(f);
    return 0;
}

static int op_fsyncdir(const char *path, int datasync,
                       struct fuse_file_info *fi)
{
    (void)path;
    (void)datasync;
    (void)fi;
    return 0; /* names are kept at once */
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    (void)fi;
    return 0;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    if (fi->fh != CTL_FH)
        close((int)fi->fh);
    return 0;
}

static int op_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return fstatvfs(backing, st) == 0 ? 0 : -errno;
}

static int op_access(const char *path, int mask)
{
    if (strcmp(path, CTL_NAME) == 0)
        return 0;
    return faccessat(backing, rel(path), mask, 0) == 0 ? 0 : -errno;
}

static const struct fuse_operations ops = {
    .init = op_init,
    .getattr = op_getattr,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .mkdir = op_mkdir,
    .rmdir = op_rmdir,
    .unlink = op_unlink,
    .rename = op_rename,
    .chmod = op_chmod,
    .utimens = op_utimens,
    .truncate = op_truncate,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write = op_write,
    .fallocate = op_fallocate,
    .fsync = op_fsync,
    .fsyncdir = op_fsyncdir,
    .flush = op_flush,
    .release = op_release,
    .statfs = op_statfs,
    .access = op_access,
};

int main(int argc, char *argv[])
{
    char *fargv[] = {argv[0], "-f", "-s", "-o", "fsname=chorus-lusw",
                     NULL,    NULL};
    int rv;

    if (argc != 3) {
        fprintf(stderr, "usage: chorus-lusw BACKING_DIR MOUNTPOINT\n");
        return 2;
    }
    backing = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (backing < 0) {
        fprintf(stderr, "chorus-lusw: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    umask(0);
    fargv[5] = argv[2];
    rv = fuse_main(6, fargv, &ops, NULL);
    for (unsigned i = n_files; i > 0; i--)
        forget(i - 1);
    close(backing);
    return rv;
}
