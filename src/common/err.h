/* Chorus error codes: one table feeds ch_strerror() and ch_err_name().
 * Codes are negative ints; numbers are append-only. */
#ifndef CHORUS_COMMON_ERR_H
#define CHORUS_COMMON_ERR_H

#define CH_ERRMSG_SIZE 256

#define CH_ERR_MAP(X)                                                          \
    X(CH_ENOMEM, 1, "out of memory")                                           \
    X(CH_EINVAL, 2, "invalid argument")                                        \
    X(CH_ENOTFOUND, 3, "not found")                                            \
    X(CH_EIO, 4, "I/O error")                                                  \
    X(CH_ETOOBIG, 5, "too large")                                              \
    X(CH_ENOTLEADER, 6, "not leader")                                          \
    X(CH_ETIMEDOUT, 7, "timed out")                                            \
    X(CH_EUNKNOWN, 8, "outcome unknown")                                       \
    X(CH_ESHUTDOWN, 9, "shutting down")                                        \
    X(CH_EBUSY, 10, "busy")                                                    \
    X(CH_ECORRUPT, 11, "corrupt data")                                         \
    X(CH_EFULL, 12, "limit reached")                                           \
    X(CH_EPROTO, 13, "protocol error")                                         \
    X(CH_ENOSPACE, 14, "no space left")                                        \
    X(CH_ECONNECT, 15, "connection failed")                                    \
    X(CH_EMISSING, 16, "not on this node yet (catching up)")

enum {
#define CH_ERR_ENUM(name, num, text) name = -(num),
    CH_ERR_MAP(CH_ERR_ENUM)
#undef CH_ERR_ENUM
};

/* Text for a code (0 gives "ok"); never NULL. */
const char *ch_strerror(int code);
/* Symbolic name for a code, e.g. "CH_EINVAL"; never NULL. */
const char *ch_err_name(int code);

/* Invariant check that stays on in release builds. */
#define CH_ASSERT(cond)                                                        \
    do {                                                                       \
        if (!(cond))                                                           \
            ch__assert_fail(#cond, __FILE__, __LINE__);                        \
    } while (0)
_Noreturn void ch__assert_fail(const char *expr, const char *file, int line);

#endif
