/* Address ranges (tools/common/cidr.h): what parses and into what, what
 * does not, and matching across the two families (an IPv4 rule against an
 * IPv4 client seen as ::ffff:a.b.c.d on a dual-stack socket, and the
 * reverse). */
#include "cidr.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#define T(name, desc) Test(cidr, name, .timeout = 10, .description = desc)

/* An AF_INET or AF_INET6 socket address from a literal (port 4242). */
static struct sockaddr_storage sa_of(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(4242);
    } else {
        cr_assert_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1, "bad literal %s", text);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(4242);
    }
    return ss;
}

static bool matches(const char *rule, const char *addr)
{
    struct cidr c;
    cr_assert_eq(cidr_parse(rule, &c), 0, "rule %s", rule);
    struct sockaddr_storage ss = sa_of(addr);
    return cidr_match(&c, (const struct sockaddr *)&ss);
}

/* rule parses to the IPv6-form address `want` (a literal) and prefix. */
static void parses_to(const char *rule, const char *want, unsigned prefix)
{
    struct cidr c;
    memset(&c, 0x5a, sizeof c);
    cr_assert_eq(cidr_parse(rule, &c), 0, "rule '%s'", rule);
    uint8_t a[16];
    cr_assert_eq(inet_pton(AF_INET6, want, a), 1);
    cr_assert_arr_eq(c.addr, a, 16, "rule '%s': address", rule);
    cr_assert_eq(c.prefix, prefix, "rule '%s': prefix %u, want %u", rule, c.prefix, prefix);
}

T(parse_ipv4, "IPv4 ranges in the IPv6 form: ::ffff:a.b.c.d, prefix 96 + p")
{
    parses_to("10.0.0.0/8", "::ffff:10.0.0.0", 104);
    parses_to("192.168.1.7", "::ffff:192.168.1.7", 128);
    parses_to("192.168.1.7/32", "::ffff:192.168.1.7", 128);
    parses_to("0.0.0.0/0", "::ffff:0.0.0.0", 96);
    parses_to("255.255.255.255/31", "::ffff:255.255.255.254", 127);
    parses_to("172.16.0.0/12", "::ffff:172.16.0.0", 108);
}

T(parse_ipv6, "IPv6 ranges as written, the mapped form included")
{
    parses_to("::1", "::1", 128);
    parses_to("::1/128", "::1", 128);
    parses_to("fd00::/8", "fd00::", 8);
    parses_to("::/0", "::", 0);
    parses_to("2001:db8::/32", "2001:db8::", 32);
    parses_to("::ffff:10.0.0.0/104", "::ffff:10.0.0.0", 104);
    parses_to("FE80::AbCd/10", "fe80::", 10);
}

T(parse_clears_host_bits, "host bits past the prefix are accepted and cleared")
{
    parses_to("10.1.2.3/8", "::ffff:10.0.0.0", 104);
    parses_to("10.255.255.255/9", "::ffff:10.128.0.0", 105);
    parses_to("192.168.1.255/0", "::ffff:0.0.0.0", 96);
    parses_to("2001:db8:ffff::1/33", "2001:db8:8000::", 33);
    parses_to("ffff:ffff::/1", "8000::", 1);
    parses_to("ffff::ffff/127", "ffff::fffe", 127);
    parses_to("ffff::ffff/0", "::", 0);
}

T(parse_rejects, "names, empty parts, oversized prefixes, junk, signs and blanks: -EINVAL")
{
    static const char *const bad[] = {
        "",
        "localhost",
        "example.com/8",
        "1.2.3.4/",
        "/8",
        "/",
        "1.2.3.4/33",
        "1.2.3.4/99",
        "1.2.3.4/1000",
        "::1/129",
        "::/200",
        "1.2.3.4/8x",
        "1.2.3.4/8 ",
        "1.2.3.4/ 8",
        " 1.2.3.4",
        "1.2.3.4 ",
        "+1.2.3.4",
        "1.2.3.4/+8",
        "1.2.3.4/-1",
        "1.2.3.4/08",
        "1.2.3.4/8/8",
        "1.2.3",
        "10/8",
        "1.2.3.4.5",
        "1.2.3.256",
        "01.2.3.4",
        "0x1.2.3.4",
        "fe80::1%lo",
        "fe80::1%lo/64",
        "::1::2",
        "[::1]",
        "[::1]/128",
        "1.2.3.4\n",
        "12345:ffff::/16",
    };
    size_t n = sizeof bad / sizeof *bad;
    for (size_t i = 0; i < n; i++) {
        struct cidr c;
        memset(&c, 0x5a, sizeof c);
        cr_assert_eq(cidr_parse(bad[i], &c), -EINVAL, "'%s' parsed", bad[i]);
        cr_assert_eq(c.prefix, 0x5a5a5a5au, "'%s': *out written on failure", bad[i]);
    }
    struct cidr c;
    cr_assert_eq(cidr_parse(NULL, &c), -EINVAL);
    /* Longer than any address: refused before it is copied. */
    char longer[200];
    memset(longer, '1', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    cr_assert_eq(cidr_parse(longer, &c), -EINVAL);
}

T(dual_stack_v4_rule, "an IPv4 rule matches the IPv4 client and the same client as ::ffff:a.b.c.d")
{
    cr_assert(matches("10.0.0.0/8", "10.1.2.3"));
    cr_assert(matches("10.0.0.0/8", "::ffff:10.1.2.3"));
    cr_assert(!matches("10.0.0.0/8", "11.0.0.0"));
    cr_assert(!matches("10.0.0.0/8", "::ffff:11.0.0.0"));
    cr_assert(!matches("10.0.0.0/8", "::10.1.2.3"), "IPv4-compatible is not IPv4-mapped");
    cr_assert(!matches("10.0.0.0/8", "64:ff9b::10.1.2.3"), "NAT64 is not IPv4");
    cr_assert(matches("127.0.0.1", "::ffff:127.0.0.1"));
    cr_assert(!matches("127.0.0.1", "::1"));
}

T(dual_stack_v6_rule, "a mapped IPv6 rule matches IPv4 clients, and ::/0 matches everyone")
{
    cr_assert(matches("::ffff:10.0.0.0/104", "10.200.0.1"));
    cr_assert(matches("::ffff:10.0.0.0/104", "::ffff:10.200.0.1"));
    cr_assert(!matches("::ffff:10.0.0.0/104", "11.0.0.1"));
    cr_assert(matches("::ffff:0:0/96", "1.2.3.4"));
    cr_assert(matches("::/0", "1.2.3.4"));
    cr_assert(matches("::/0", "2001:db8::1"));
    cr_assert(!matches("::1", "127.0.0.1"));
    cr_assert(!matches("fd00::/8", "10.0.0.1"));
}

T(v4_any_is_v4_only, "0.0.0.0/0 matches every IPv4 client (either form) and no IPv6 one")
{
    cr_assert(matches("0.0.0.0/0", "0.0.0.0"));
    cr_assert(matches("0.0.0.0/0", "255.255.255.255"));
    cr_assert(matches("0.0.0.0/0", "::ffff:8.8.8.8"));
    cr_assert(!matches("0.0.0.0/0", "::1"));
    cr_assert(!matches("0.0.0.0/0", "::"));
    cr_assert(!matches("0.0.0.0/0", "2001:db8::1"));
}

T(boundaries, "the first and last address of a range match, their neighbours do not")
{
    cr_assert(matches("192.168.4.0/22", "192.168.4.0"));
    cr_assert(matches("192.168.4.0/22", "192.168.7.255"));
    cr_assert(!matches("192.168.4.0/22", "192.168.3.255"));
    cr_assert(!matches("192.168.4.0/22", "192.168.8.0"));
    cr_assert(matches("10.0.0.128/25", "10.0.0.255"));
    cr_assert(!matches("10.0.0.128/25", "10.0.0.127"));
    cr_assert(matches("1.2.3.4/32", "1.2.3.4"));
    cr_assert(!matches("1.2.3.4/32", "1.2.3.5"));
    cr_assert(!matches("1.2.3.4/32", "1.2.3.3"));
    cr_assert(matches("2001:db8::/127", "2001:db8::1"));
    cr_assert(!matches("2001:db8::/127", "2001:db8::2"));
    cr_assert(matches("2001:db8::/128", "2001:db8::"));
    cr_assert(!matches("2001:db8::/128", "2001:db8::1"));
    cr_assert(matches("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    cr_assert(!matches("2001:db8::/32", "2001:db9::"));
    cr_assert(!matches("2001:db8::/32", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
    cr_assert(matches("8000::/1", "ffff::"));
    cr_assert(!matches("8000::/1", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
}

T(other_families, "a socket address of another family, or none, never matches")
{
    struct cidr c;
    cr_assert_eq(cidr_parse("::/0", &c), 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    cr_assert(!cidr_match(&c, (const struct sockaddr *)&ss));
    ss.ss_family = AF_UNSPEC;
    cr_assert(!cidr_match(&c, (const struct sockaddr *)&ss));
    cr_assert(!cidr_match(&c, NULL));
    struct cidr_list l = {0};
    cr_assert_eq(cidr_list_add(&l, "::/0"), 0);
    cr_assert(!cidr_list_match(&l, (const struct sockaddr *)&ss));
    cidr_list_free(&l);
}

T(list, "a list matches when any of its ranges does; empty matches nothing; bad text is refused")
{
    struct cidr_list l = {0};
    struct sockaddr_storage a = sa_of("10.9.9.9"), b = sa_of("::ffff:192.168.1.1"),
                            c = sa_of("fd00::5"), d = sa_of("8.8.8.8");
    cr_assert(!cidr_list_match(&l, (const struct sockaddr *)&a));
    cr_assert(!cidr_list_match(NULL, (const struct sockaddr *)&a));
    cr_assert_eq(cidr_list_add(&l, "10.0.0.0/8"), 0);
    cr_assert_eq(cidr_list_add(&l, "192.168.0.0/16"), 0);
    cr_assert_eq(cidr_list_add(&l, "bogus"), -EINVAL);
    cr_assert_eq(cidr_list_add(&l, "1.2.3.4/33"), -EINVAL);
    for (int i = 0; i < 10; i++) /* past the first growth */
        cr_assert_eq(cidr_list_add(&l, "fd00::/8"), 0);
    cr_assert_eq(l.n, 12);
    cr_assert_geq(l.cap, l.n);
    cr_assert(cidr_list_match(&l, (const struct sockaddr *)&a));
    cr_assert(cidr_list_match(&l, (const struct sockaddr *)&b));
    cr_assert(cidr_list_match(&l, (const struct sockaddr *)&c));
    cr_assert(!cidr_list_match(&l, (const struct sockaddr *)&d));
    cidr_list_free(&l);
    cr_assert_null(l.v);
    cr_assert_eq(l.n, 0);
    cr_assert_eq(l.cap, 0);
    cidr_list_free(&l); /* twice: harmless */
    cidr_list_free(NULL);
}

T(ports_ignored, "the port and scope of a socket address play no part")
{
    struct cidr c;
    cr_assert_eq(cidr_parse("fe80::/10", &c), 0);
    struct sockaddr_storage ss = sa_of("fe80::1");
    ((struct sockaddr_in6 *)&ss)->sin6_scope_id = 3;
    ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
    cr_assert(cidr_match(&c, (const struct sockaddr *)&ss));
}

static bool same(const char *a, const char *b)
{
    struct sockaddr_storage x = sa_of(a), y = sa_of(b);
    return cidr_same_ip((const struct sockaddr *)&x, (const struct sockaddr *)&y);
}

T(same_ip_compares_addresses, "cidr_same_ip: one IP whatever its form and port (BIND, UDP)")
{
    cr_assert(same("127.0.0.1", "127.0.0.1"));
    cr_assert(same("127.0.0.1", "::ffff:127.0.0.1"));
    cr_assert(same("::1", "0:0::1"));
    cr_assert_not(same("127.0.0.1", "127.0.0.2"));
    cr_assert_not(same("::1", "::2"));
    cr_assert_not(same("0.0.0.1", "::1"));
    struct sockaddr_storage x = sa_of("127.0.0.1"), none;
    memset(&none, 0, sizeof none); /* AF_UNSPEC: no IP */
    cr_assert_not(cidr_same_ip((const struct sockaddr *)&x, (const struct sockaddr *)&none));
    uint8_t form[16];
    cr_assert(cidr_ipv6_form((const struct sockaddr *)&x, form));
    const uint8_t want[16] = {[10] = 0xff, [11] = 0xff, [12] = 127, [15] = 1};
    cr_assert_arr_eq(form, want, 16);
    cr_assert_not(cidr_ipv6_form(NULL, form));
}
