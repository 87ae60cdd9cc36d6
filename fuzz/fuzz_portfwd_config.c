/* libFuzzer target: portfwd's configuration parser (tools/portfwd/config.c,
 * included whole).  The input is the file's text.  On success every rule
 * must be complete (hosts and ports non-empty, no brackets, no "/tcp"
 * left, a sane timeout, lines increasing) and every pattern non-NULL, and
 * pf_allowed() / pf_pattern_match() are run over a few addresses and the
 * parsed patterns.  On failure the message must name the file and a line,
 * "fuzz.conf:N: ...", and *out must be empty.  pf_config_free() always.
 * The same bytes, split at NULs, are also the four values of
 * pf_config_add_rule() (the command line's rule).
 * Any broken invariant aborts.
 *
 * Build: `make fuzz` (or clang -fsanitize=fuzzer,address,undefined
 *        -Itools fuzz/fuzz_portfwd_config.c -o /tmp/fz && /tmp/fz)
 * Seeds: fuzz/corpus/fuzz_portfwd_config/, dictionary fuzz_portfwd_config.dict. */
#include "portfwd/config.c"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fuzz.conf"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_portfwd_config: %s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const clients[] = {
    "127.0.0.1",        "10.0.0.1",         "192.168.2.10",    "::1",        "fe80::1", "",
    "2001:618:1::e43f", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1", "fe80::1%lo",
};

static void fz_check_patterns(const struct pf_patterns *pt)
{
    CHECK(pt->nallow == 0 || pt->allow != NULL);
    CHECK(pt->ndeny == 0 || pt->deny != NULL);
    for (size_t i = 0; i < pt->nallow; i++) {
        CHECK(pt->allow[i] != NULL && pt->allow[i][0] != '\0');
        CHECK(pf_pattern_match(pt->allow[i], pt->allow[i]));
    }
    for (size_t i = 0; i < pt->ndeny; i++) {
        CHECK(pt->deny[i] != NULL && pt->deny[i][0] != '\0');
        CHECK(pf_pattern_match(pt->deny[i], pt->deny[i]));
    }
}

static void fz_check_port(const char *port)
{
    CHECK(port != NULL && port[0] != '\0');
    CHECK(strchr(port, '/') == NULL);
}

static void fz_check_host(const char *host)
{
    CHECK(host != NULL && host[0] != '\0');
    CHECK(host[0] != '[' && strchr(host, ']') == NULL);
}

/* A parsed file's rules carry increasing line numbers; a rule made from
 * option values (fz_add_rule) has none: line 0. */
static void fz_check_ok(const struct pf_config *cfg, bool from_file)
{
    CHECK(cfg->nrules == 0 || cfg->rules != NULL);
    fz_check_patterns(&cfg->access);
    int last = 0;
    for (size_t i = 0; i < cfg->nrules; i++) {
        const struct pf_rule *r = &cfg->rules[i];
        fz_check_host(r->bind_host);
        fz_check_host(r->connect_host);
        fz_check_port(r->bind_port);
        fz_check_port(r->connect_port);
        if (r->source)
            fz_check_host(r->source);
        CHECK(r->timeout >= 0 && r->timeout <= PF_TIMEOUT_MAX);
        CHECK(from_file ? r->line > last : r->line == 0);
        last = r->line;
        fz_check_patterns(&r->access);
        for (size_t c = 0; c < sizeof clients / sizeof *clients; c++) {
            bool both = pf_allowed(cfg, r, clients[c]);
            /* The rule's lists can only narrow what the global ones let in. */
            CHECK(!both || pf_allowed(cfg, NULL, clients[c]));
        }
    }
    for (size_t c = 0; c < sizeof clients / sizeof *clients; c++)
        (void)pf_allowed(cfg, NULL, clients[c]);
    if (cfg->logfile)
        CHECK(cfg->logfile[0] != '\0');
    if (cfg->pidfile)
        CHECK(cfg->pidfile[0] != '\0');
}

static void fz_check_failed(const struct pf_config *cfg, int rc, const char *err)
{
    CHECK(rc == -EINVAL || rc == -ENOMEM);
    CHECK(err[0] != '\0');
    CHECK(strncmp(err, NAME ":", sizeof NAME) == 0);
    const char *p = err + sizeof NAME;
    CHECK(*p >= '1' && *p <= '9');
    while (*p >= '0' && *p <= '9')
        p++;
    CHECK(p[0] == ':' && p[1] == ' ' && p[2] != '\0');
    CHECK(cfg->nrules == 0 && cfg->rules == NULL && cfg->logfile == NULL && cfg->pidfile == NULL &&
          !cfg->logcommon && cfg->access.nallow == 0 && cfg->access.ndeny == 0 &&
          cfg->access.allow == NULL && cfg->access.deny == NULL);
}

/* The input as portfwd's -l, -p, -r, -P values (split at NULs): each is
 * taken whole or refused without a file:line. */
static void fz_add_rule(const char *text, size_t size)
{
    const char *v[4] = {"", "", "", ""};
    size_t at = 0;
    for (int i = 0; i < 4 && at < size; i++) {
        v[i] = text + at;
        at += strlen(text + at) + 1;
    }
    struct pf_config cfg = {0};
    char err[512];
    int rc = pf_config_add_rule(&cfg, v[0], v[1], v[2], v[3], err, sizeof err);
    if (rc == 0) {
        CHECK(cfg.nrules == 1);
        fz_check_ok(&cfg, false);
        for (int i = 0; i < 4; i++)
            CHECK(strpbrk(v[i], " \t#") == NULL);
    } else {
        CHECK(rc == -EINVAL && err[0] != '\0' && strncmp(err, NAME, strlen(NAME)) != 0);
    }
    pf_config_free(&cfg);
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

    struct pf_config cfg;
    char err[512];
    int rc = pf_config_parse(text, size, NAME, &cfg, err, sizeof err);
    if (rc == 0) {
        CHECK(err[0] == '\0');
        fz_check_ok(&cfg, true);
    } else {
        fz_check_failed(&cfg, rc, err);
    }
    pf_config_free(&cfg);

    /* The matcher on its own: the input, cut at its first NUL, always
     * matches itself and '*'. */
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, text, size);
        s[size] = '\0';
        CHECK(pf_pattern_match(s, s));
        CHECK(pf_pattern_match("*", s));
        (void)pf_pattern_match(s, "192.168.2.10");
        fz_add_rule(s, size + 1);
        free(s);
    }
    free(text);
    return 0;
}
