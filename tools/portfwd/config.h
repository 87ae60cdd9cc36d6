/* portfwd's configuration: rinetd's file format (rinetd 0.73), parsed into
 * rules, so that an existing rinetd.conf works unchanged.
 *
 *   # comment (also after a line's words)
 *   bindaddress bindport connectaddress connectport [options]
 *   allow PATTERN            before any rule: global; after a rule: that rule's
 *   deny PATTERN
 *   logfile PATH
 *   logcommon
 *   pidlogfile PATH          (rinetd's name; "pidfile PATH" is the same)
 *
 * Addresses are IPv4 or IPv6 literals (IPv6 optionally in brackets,
 * "[::1]") or host names, "0.0.0.0" / "::" for any; ports are numbers or
 * service names.  Options are rinetd's bracketed list, "[timeout=SEC]" and
 * "[src=ADDR]" (comma-separated inside one pair of brackets).  Patterns are
 * addresses in which '*' matches any run of characters and '?' one
 * character, as in rinetd.  Anything else (UDP rules "port/udp", unknown
 * keywords or options, missing or extra words, a bad port) is an error
 * naming the file and the line.
 *
 * In detail: words are separated by blanks (spaces, tabs); lines end in
 * "\n" or "\r\n", and may be at most 4096 bytes long; a NUL byte or any
 * other control character but a tab is an error (in a comment too).  A '#'
 * starts a comment anywhere, except inside a double-quoted file name
 * (logfile "/var/log/my rinetd.log", quotes dropped).  Keywords and option
 * names are lower case, as in rinetd.  A port is 1-65535 (a bind port
 * may be 0: the kernel picks one) or a name that
 * getservbyname(name, "tcp") knows, optionally followed by "/tcp", which is
 * dropped: bind_port and connect_port are otherwise kept as written, for
 * the caller to resolve.  Options may have blanks around '=' and ',', each
 * at most once per rule; timeout is seconds (digits, optionally ".digits",
 * at most 2147483647; 0 = none), src an address as above.  logfile and
 * pidlogfile may each be given once.  Patterns may hold only hex digits,
 * '.', ':', '*' and '?' (no host names, as in rinetd).  Resolving names,
 * and whether a file without rules makes sense, is up to the caller. */
#ifndef PORTFWD_CONFIG_H
#define PORTFWD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct pf_patterns {
    char **allow, **deny; /* NULL-free arrays of nallow / ndeny strings */
    size_t nallow, ndeny;
};

struct pf_rule {
    char *bind_host, *bind_port; /* as written ("[::1]" without brackets) */
    char *connect_host, *connect_port;
    char *source;                      /* [src=ADDR], or NULL */
    double timeout;                    /* [timeout=SEC] idle timeout, 0 = none */
    struct pf_patterns access;         /* this rule's allow / deny lines */
    int line;                          /* where it was written */
    struct sockaddr_storage bind_addr; /* when bind_host is an address literal, it and the
                                          port; ss_family AF_UNSPEC for a host name */
};

struct pf_config {
    struct pf_rule *rules;
    size_t nrules;
    struct pf_patterns access; /* global allow / deny (before the first rule) */
    char *logfile;             /* NULL = none */
    char *pidfile;             /* NULL = none */
    bool logcommon;
};

/* Parse `len` bytes of text (need not be NUL-terminated).  `name` is used in
 * messages.  On success fills *out (free with pf_config_free) and returns 0.
 * On a malformed or unsupported line returns -EINVAL and writes
 * "NAME:LINE: what is wrong" into err (errlen bytes, always terminated);
 * *out is then left empty.  -ENOMEM when out of memory.  A file with no
 * rule at all is valid here (the caller decides whether that is an error).
 * Service names are checked with getservbyname(), so this is not for
 * several threads at once. */
int pf_config_parse(const char *text, size_t len, const char *name, struct pf_config *out,
                    char *err, size_t errlen);

/* Append one forwarding rule made of four separate values (portfwd's -l,
 * -p, -r and -P), each checked whole as the file's words are: a blank, a
 * '#' or a '[' in a value is an error, never a second word, a comment or
 * options.  0, or -EINVAL with "what is wrong" (no file:line) in err;
 * -ENOMEM.  On failure cfg may hold part of the rule: free it anyway. */
int pf_config_add_rule(struct pf_config *cfg, const char *bind_host, const char *bind_port,
                       const char *connect_host, const char *connect_port, char *err,
                       size_t errlen);

/* Whether two listening addresses (IPv4 or IPv6, with their ports)
 * cannot both be bound: the same port, and the same address, or one of
 * them the wildcard of the other's family, or one of them "::" (which
 * takes IPv4 too).  Port 0 (the kernel picks one) never overlaps.  The
 * parser rejects a file in which a rule's literal address overlaps an
 * earlier rule's ("NAME:LINE: A port P overlaps line N's B port Q ..."),
 * once the whole file is read; host names are
 * the caller's to check once resolved. */
bool pf_binds_overlap(const struct sockaddr *a, const struct sockaddr *b);

/* Among addrs[0..n) (other families are skipped), the overlapping pair
 * whose later member comes first: 1 with *first < *second, 0 if there is
 * none, -ENOMEM. */
int pf_first_overlap(const struct sockaddr *const *addrs, size_t n, size_t *first, size_t *second);

/* Read the file at path and parse it; a file that cannot be read gives
 * -errno and "PATH: strerror" in err. */
int pf_config_load(const char *path, struct pf_config *out, char *err, size_t errlen);

void pf_config_free(struct pf_config *cfg);

/* rinetd's access rules for a client address (its text form, e.g.
 * "127.0.0.1" or "::1"), global first, then the rule's: where a list of
 * allow patterns exists the address must match one of them, and it must
 * match no deny pattern.  rule may be NULL (global patterns only).
 *
 * An IPv4 address is matched as rinetd does, pattern against its dotted
 * text.  An IPv4-mapped IPv6 address ("::ffff:127.0.0.1", how a "::"
 * listener sees an IPv4 client) is that IPv4 address.  An IPv6 address
 * matches a wildcard pattern when any of its spellings does: the short
 * one ("fe80::1"), eight groups ("fe80:0:0:0:0:0:0:1") or eight padded
 * groups ("fe80:0000:0000:0000:0000:0000:0000:0001").  A pattern without
 * '*' or '?' that is an address is compared as an address, so
 * "0:0:0:0:0:0:0:1" is "::1" and "::ffff:10.0.0.1" is 10.0.0.1. */
bool pf_allowed(const struct pf_config *cfg, const struct pf_rule *rule, const char *client);

/* rinetd's pattern match: '*' any run of characters, '?' one, otherwise
 * exact, case-insensitive (IPv6 hex digits). */
bool pf_pattern_match(const char *pattern, const char *text);

#endif
