/* socks5d's users: the names and passwords RFC 1929 checks, from
 * --users FILE and from -u USER -P PASSWORD.
 *
 * The file holds one "user:password" per line:
 *
 *   # a comment (the first non-blank byte of the line is '#')
 *   alice:s3cret
 *   bob:pass:with:colons       (split at the first ':')
 *
 * Every byte between the start of the line and the first ':' is the user,
 * every byte after it up to the end of the line the password: nothing is
 * trimmed, so a blank is part of either.  Lines end in "\n" or "\r\n" (the
 * last one may end without).  Blank lines (nothing, or only spaces and
 * tabs) and comment lines are skipped.  User and password are 1-255 bytes
 * each (RFC 1929's ULEN and PLEN), and a line may not hold a NUL byte.  A
 * user given twice is an error, in one file or across the file and -u: a
 * second line for a user is a mistake more often than a change.
 *
 * A struct users starts zeroed ({0}); users_add and users_parse add to it,
 * and users_free empties it.  Entries are kept sorted by name, so that a
 * check is a binary search.  Several threads may call users_check on the
 * same users at once (it only reads).
 */
#ifndef SOCKS5D_USERS_H
#define SOCKS5D_USERS_H

#include <stdbool.h>
#include <stddef.h>

/* Longest user name and password, in bytes (RFC 1929 §2). */
#define USERS_FIELD_MAX 255

struct user; /* one entry (users.c) */

struct users {
    struct user *v; /* sorted by name, n of cap */
    size_t n, cap;
};

/* Parse len bytes of text (need not be NUL-terminated) in the format
 * above, `name` standing for the file in messages, and add its users to
 * *u.  Returns 0; -EINVAL for a malformed line or a user given twice, with
 * "NAME:LINE: what is wrong" in err (errlen bytes, always terminated when
 * errlen > 0); -ENOMEM ("out of memory").  On an error *u is as it was
 * before the call.  Lines are checked in order; users given twice are
 * looked for once every line has parsed. */
int users_parse(const char *text, size_t len, const char *name, struct users *u, char *err,
                size_t errlen);

/* Read the file at path and users_parse it (messages name it by path).
 * Returns 0, -errno when it cannot be read ("PATH: strerror" in err), or
 * what users_parse returns. */
int users_load(const char *path, struct users *u, char *err, size_t errlen);

/* Add one user (-u and -P).  Returns 0; -EINVAL for a NULL, empty or
 * overlong (> USERS_FIELD_MAX bytes) user or password; -EEXIST when the
 * user is there already; -ENOMEM. */
int users_add(struct users *u, const char *user, const char *pass);

/* Whether user is there with this password.  The time taken does not
 * depend on the bytes of either password (the given one or the stored
 * one), nor on whether the user exists beyond the name lookup itself. */
bool users_check(const struct users *u, const char *user, const char *pass);

/* Forget every user (passwords are wiped first) and leave *u empty. */
void users_free(struct users *u);

#endif /* SOCKS5D_USERS_H */
