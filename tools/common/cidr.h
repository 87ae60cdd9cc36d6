/* Address ranges (CIDR) for the tools' client and destination rules.
 *
 * Rules compare addresses as addresses, never as text: every address is
 * seen in its IPv6 form, an IPv4 address as ::ffff:a.b.c.d, so that an
 * IPv4 rule matches an IPv4 client that arrives on a dual-stack socket as
 * ::ffff:a.b.c.d, and "10.0.0.0/8" and "::ffff:10.0.0.0/104" are the same
 * range.
 */
#ifndef TOOL_CIDR_H
#define TOOL_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct cidr {
    uint8_t addr[16]; /* IPv6 form, host bits cleared */
    unsigned prefix;  /* 0..128, in the IPv6 form */
};

/* A list of ranges (empty: matches nothing). */
struct cidr_list {
    struct cidr *v;
    size_t n, cap;
};

/* Parse "10.0.0.0/8", "192.168.1.7" (/32), "::1" (/128), "fd00::/8".
 * Host bits set past the prefix ("10.1.2.3/8") are accepted and cleared.
 * Returns 0 or -EINVAL (anything else, names included): the address is
 * what inet_pton() takes (IPv4 as four decimal parts, IPv6 without a
 * zone), the prefix plain decimal digits without a leading zero, 0..32
 * after an IPv4 address and 0..128 after an IPv6 one; no blanks, no sign,
 * nothing after the prefix, no empty address or prefix ("/8", "1.2.3.4/").
 * *out is written only on success. */
int cidr_parse(const char *text, struct cidr *out);

/* Parse and append; 0, -EINVAL, -ENOMEM. */
int cidr_list_add(struct cidr_list *l, const char *text);
void cidr_list_free(struct cidr_list *l);

/* Whether sa (AF_INET or AF_INET6; anything else never matches) is in c. */
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/* sa's address in the IPv6 form (IPv4 as ::ffff:a.b.c.d) into out; false
 * for NULL or a family other than AF_INET and AF_INET6. */
bool cidr_ipv6_form(const struct sockaddr *sa, uint8_t out[16]);

/* Whether a and b hold the same IP, ports aside (IPv4 and its ::ffff:
 * form are the same IP); false if either has no IP. */
bool cidr_same_ip(const struct sockaddr *a, const struct sockaddr *b);
bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);

#endif /* TOOL_CIDR_H */
