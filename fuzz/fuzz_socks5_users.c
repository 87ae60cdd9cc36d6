/* libFuzzer target: socks5d's configuration text (tools/socks5d/users.c
 * and tools/common/cidr.c, included whole).
 *
 * The input is a --users file, parsed into users that already hold one
 * (as -u would add).  On success every entry must be sane (user and
 * password 1-255 bytes, the slot zero-padded, names sorted and unique),
 * check true with its own password and false with another, and the users
 * written back as a file (CRLF line ends, so that a password ending in CR
 * keeps it) must parse to the same entries.  On failure the message must
 * be "fuzz.users:N: ..." and the users as they were.
 * The same bytes, split at NULs, are also -u / -P values (users_add), and
 * the first piece is a --allow / --deny-dest range (cidr_parse): a range
 * that parses has its host bits clear, contains its own address, and
 * written back as text parses to the same range.
 * Any broken invariant aborts.
 *
 * Build: `make fuzz` (or clang -fsanitize=fuzzer,address,undefined
 *        -Itools fuzz/fuzz_socks5_users.c -o /tmp/fz && /tmp/fz)
 * Seeds: fuzz/corpus/fuzz_socks5_users/, dictionary fuzz_socks5_users.dict. */
#include "common/cidr.c"
#include "socks5d/users.c"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fuzz.users"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_socks5_users: %s:%d: check failed: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void fz_check_entries(const struct users *u)
{
    CHECK(u->n <= u->cap && (u->n == 0 || u->v != NULL));
    for (size_t i = 0; i < u->n; i++) {
        const struct user *e = &u->v[i];
        size_t n = strnlen(e->name, sizeof e->name);
        CHECK(n >= 1 && n <= USERS_FIELD_MAX);
        CHECK(e->passlen >= 1 && e->passlen <= USERS_FIELD_MAX);
        CHECK(memchr(e->pass, 0, e->passlen) == NULL);
        for (size_t k = e->passlen; k < sizeof e->pass; k++)
            CHECK(e->pass[k] == 0);
        CHECK(i == 0 || strcmp(u->v[i - 1].name, e->name) < 0);
        char pass[USERS_FIELD_MAX + 2];
        memcpy(pass, e->pass, e->passlen + 1);
        CHECK(users_check(u, e->name, pass));
        pass[e->passlen - 1] ^= 1;
        CHECK(!users_check(u, e->name, pass));
        pass[e->passlen - 1] ^= 1;
        pass[e->passlen] = 'x';
        pass[e->passlen + 1] = '\0';
        CHECK(!users_check(u, e->name, pass));
    }
}

/* The entries of u that came from the file, written back as a file. */
static void fz_round_trip(const struct users *u)
{
    size_t cap = u->n * (2 * USERS_FIELD_MAX + 3) + 1, len = 0;
    char *text = malloc(cap);
    if (!text)
        return;
    for (size_t i = 0; i < u->n; i++) {
        const struct user *e = &u->v[i];
        if (e->line == 0) /* added by users_add, not from the file */
            continue;
        len += (size_t)snprintf(text + len, cap - len, "%s:%.*s\r\n", e->name, (int)e->passlen,
                                (const char *)e->pass);
    }
    struct users again = {0};
    char err[512];
    int rc = users_parse(text, len, NAME, &again, err, sizeof err);
    CHECK(rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
        size_t k = 0;
        for (size_t i = 0; i < u->n; i++) {
            const struct user *e = &u->v[i];
            if (e->line == 0)
                continue;
            CHECK(k < again.n);
            CHECK(strcmp(e->name, again.v[k].name) == 0 && e->passlen == again.v[k].passlen);
            CHECK(memcmp(e->pass, again.v[k].pass, sizeof e->pass) == 0);
            k++;
        }
        CHECK(k == again.n);
    }
    users_free(&again);
    free(text);
}

static void fz_check_failed(int rc, const char *err)
{
    CHECK(rc == -EINVAL || rc == -ENOMEM);
    if (rc == -ENOMEM)
        return;
    CHECK(strncmp(err, NAME ":", sizeof NAME) == 0);
    const char *p = err + sizeof NAME;
    CHECK(*p >= '1' && *p <= '9');
    while (*p >= '0' && *p <= '9')
        p++;
    CHECK(p[0] == ':' && p[1] == ' ' && p[2] != '\0');
}

static void fz_users(const char *text, size_t size)
{
    struct users u = {0};
    CHECK(users_add(&u, "fz-keep", "kept") == 0);
    char err[512];
    int rc = users_parse(text, size, NAME, &u, err, sizeof err);
    if (rc == 0) {
        CHECK(err[0] == '\0');
        fz_check_entries(&u);
        fz_round_trip(&u);
    } else {
        fz_check_failed(rc, err);
        CHECK(u.n == 1 && users_check(&u, "fz-keep", "kept"));
    }
    CHECK(users_check(&u, "fz-keep", "kept"));
    users_free(&u);
    CHECK(u.n == 0 && u.v == NULL);
}

/* The input as -u USER -P PASSWORD values, split at NULs. */
static void fz_add(const char *s, size_t size)
{
    const char *user = s, *pass = "";
    size_t ulen = strlen(s);
    if (ulen + 1 < size)
        pass = s + ulen + 1;
    size_t plen = strlen(pass);
    /* Two users already there, so that the new one goes before, between
     * or after them (or is one of them). */
    struct users u = {0};
    CHECK(users_add(&u, "g", "1") == 0 && users_add(&u, "p", "2") == 0);
    CHECK(!users_check(&u, s, s)); /* g and p have other passwords */
    int rc = users_add(&u, user, pass);
    bool fits = ulen >= 1 && ulen <= USERS_FIELD_MAX && plen >= 1 && plen <= USERS_FIELD_MAX;
    bool taken = !strcmp(user, "g") || !strcmp(user, "p");
    CHECK(!fits ? rc == -EINVAL : taken ? rc == -EEXIST : rc == 0 || rc == -ENOMEM);
    if (rc == 0) {
        CHECK(users_check(&u, user, pass));
        CHECK(users_add(&u, user, "other") == -EEXIST);
        fz_check_entries(&u);
    }
    users_free(&u);
}

/* c written back as text: "a.b.c.d/p" for an IPv4 range, else IPv6. */
static void fz_cidr_text(const struct cidr *c, char *out, size_t size)
{
    char a[INET6_ADDRSTRLEN];
    bool v4 = c->prefix >= 96 && memcmp(c->addr, v4_mapped_prefix, 12) == 0;
    CHECK(inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? c->addr + 12 : c->addr, a, sizeof a));
    snprintf(out, size, "%s/%u", a, v4 ? c->prefix - 96 : c->prefix);
}

static void fz_cidr(const char *s)
{
    struct cidr c;
    int rc = cidr_parse(s, &c);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc != 0)
        return;
    CHECK(c.prefix <= 128);
    uint8_t a[16];
    memcpy(a, c.addr, 16);
    clear_host_bits(a, c.prefix);
    CHECK(memcmp(a, c.addr, 16) == 0);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    memcpy(&in6.sin6_addr, c.addr, 16);
    CHECK(cidr_match(&c, (const struct sockaddr *)&in6));
    char text[80];
    fz_cidr_text(&c, text, sizeof text);
    struct cidr again;
    CHECK(cidr_parse(text, &again) == 0);
    CHECK(again.prefix == c.prefix && memcmp(again.addr, c.addr, 16) == 0);
    /* An IPv4 range matches its address as an AF_INET client too. */
    if (memcmp(c.addr, v4_mapped_prefix, 12) == 0 && c.prefix >= 96) {
        struct sockaddr_in in = {.sin_family = AF_INET};
        memcpy(&in.sin_addr, c.addr + 12, 4);
        CHECK(cidr_match(&c, (const struct sockaddr *)&in));
    }
    /* The address with its last bit flipped is in the range unless the
     * prefix covers that bit. */
    in6.sin6_addr.s6_addr[15] ^= 1;
    CHECK(cidr_match(&c, (const struct sockaddr *)&in6) == (c.prefix < 128));
    struct cidr_list l = {0};
    CHECK(cidr_list_add(&l, s) == 0 &&
          cidr_list_match(&l, (const struct sockaddr *)&in6) == (c.prefix < 128));
    cidr_list_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan catches any read past len. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    fz_users(text, size);
    free(text);

    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
        fz_add(s, size + 1);
        fz_cidr(s);
        free(s);
    }
    return 0;
}
