/* portfwd's configuration parser (tools/portfwd/config.h): rinetd.conf files that must
 * parse, every error with its exact "name:line: message", and the access
 * rules (pf_allowed, pf_pattern_match). */
#include "config.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T(name, desc) Test(portfwd_config, name, .timeout = 10, .description = desc)

static char err[512];

/* Parses NUL-terminated text as "t.conf", which must succeed. */
static void parse_ok(const char *text, struct pf_config *cfg)
{
    memset(err, 'x', sizeof err);
    int rc = pf_config_parse(text, strlen(text), "t.conf", cfg, err, sizeof err);
    cr_assert_eq(rc, 0, "parse failed (%d): %s\n--- text:\n%s", rc, err, text);
}

static void assert_empty(const struct pf_config *cfg)
{
    cr_assert_eq(cfg->nrules, 0);
    cr_assert_null(cfg->rules);
    cr_assert_null(cfg->logfile);
    cr_assert_null(cfg->pidfile);
    cr_assert_eq(cfg->access.nallow, 0);
    cr_assert_eq(cfg->access.ndeny, 0);
    cr_assert_null(cfg->access.allow);
    cr_assert_null(cfg->access.deny);
    cr_assert(!cfg->logcommon);
}

/* len bytes of text (may hold NULs) must fail with exactly `message`. */
static void parse_err_n(const char *text, size_t len, const char *message)
{
    struct pf_config cfg;
    memset(&cfg, 0x5a, sizeof cfg); /* must be emptied however it came in */
    memset(err, 'x', sizeof err);
    int rc = pf_config_parse(text, len, "t.conf", &cfg, err, sizeof err);
    cr_assert_eq(rc, -EINVAL, "rc %d (want -EINVAL), err \"%s\"", rc, rc ? err : "");
    cr_assert_str_eq(err, message);
    assert_empty(&cfg);
    pf_config_free(&cfg); /* harmless on an empty config */
}

static void parse_err(const char *text, const char *message)
{
    parse_err_n(text, strlen(text), message);
}

static void assert_rule(const struct pf_rule *r, const char *bh, const char *bp, const char *ch,
                        const char *cp)
{
    cr_assert_str_eq(r->bind_host, bh);
    cr_assert_str_eq(r->bind_port, bp);
    cr_assert_str_eq(r->connect_host, ch);
    cr_assert_str_eq(r->connect_port, cp);
}

/* ------------------------------------------------------------ valid files */

T(empty, "an empty file (and a NULL text) is valid, with no rule")
{
    struct pf_config cfg;
    parse_ok("", &cfg);
    assert_empty(&cfg);
    pf_config_free(&cfg);
    cr_assert_eq(pf_config_parse(NULL, 0, "t.conf", &cfg, err, sizeof err), 0);
    assert_empty(&cfg);
    pf_config_free(&cfg);
}

T(comments_blanks, "comment lines, blank lines and blank-only lines are skipped")
{
    struct pf_config cfg;
    parse_ok("# a comment\n\n   \n\t\t\n   # indented comment\n#\n", &cfg);
    assert_empty(&cfg);
    pf_config_free(&cfg);
}

T(simple_rule, "a forwarding rule's four words, its line, no options")
{
    struct pf_config cfg;
    parse_ok("# web\n\n0.0.0.0 80 192.168.1.2 8080\n", &cfg);
    cr_assert_eq(cfg.nrules, 1);
    assert_rule(&cfg.rules[0], "0.0.0.0", "80", "192.168.1.2", "8080");
    cr_assert_eq(cfg.rules[0].line, 3);
    cr_assert_null(cfg.rules[0].source);
    cr_assert_eq(cfg.rules[0].timeout, 0.0);
    cr_assert_eq(cfg.rules[0].access.nallow, 0);
    cr_assert_eq(cfg.rules[0].access.ndeny, 0);
    cr_assert(!cfg.logcommon);
    pf_config_free(&cfg);
    assert_empty(&cfg);
}

/* A file laid out like the one rinetd packages ship: mostly comments and
 * commented-out examples (UDP among them), a logfile, logcommon off. */
static const char debian_conf[] =
    "#\n"
    "# rinetd.conf: forwarding rules for the redirection server\n"
    "#\n"
    "# global access rules (addresses only, wildcards * and ?):\n"
    "# allow 192.168.2.*\n"
    "# deny 192.168.2.1?\n"
    "# allow fe80:*\n"
    "# deny 2001:618:*:e43f\n"
    "\n"
    "\n"
    "#\n"
    "# rules: bindaddress bindport connectaddress connectport [options]\n"
    "# access rules right after a rule apply to it alone\n"
    "#\n"
    "# 0.0.0.0     80        192.168.1.2     80\n"
    "# ::1         80        192.168.1.2     80\n"
    "# 0.0.0.0     80        fe80::1         80\n"
    "# 127.0.0.1   4000      127.0.0.1       3000\n"
    "# 127.0.0.1   4000/udp  127.0.0.1       22           [timeout=1200]\n"
    "# 127.0.0.1   8000/udp  192.168.1.2     8000/udp     [src=192.168.1.2,timeout=1200]\n"
    "\n"
    "# where connections are logged\n"
    "logfile /var/log/rinetd.log\n"
    "\n"
    "# web-server style log lines:\n"
    "# logcommon\n";

T(debian_example, "a file laid out like a packaged /etc/rinetd.conf parses unchanged")
{
    struct pf_config cfg;
    parse_ok(debian_conf, &cfg);
    cr_assert_eq(cfg.nrules, 0);
    cr_assert_str_eq(cfg.logfile, "/var/log/rinetd.log");
    cr_assert(!cfg.logcommon);
    cr_assert_null(cfg.pidfile);
    pf_config_free(&cfg);
}

T(debian_example_uncommented, "the example's TCP rules and patterns, uncommented (its two "
                              "rules on 0.0.0.0 port 80 are an error: issue 8 item 6)")
{
    parse_err("allow 192.168.2.*\n"
              "0.0.0.0     80        192.168.1.2     80\n"
              "::1         80        192.168.1.2     80\n"
              "0.0.0.0     80        fe80::1         80\n",
              "t.conf:4: 0.0.0.0 port 80 overlaps line 2's 0.0.0.0 port 80 (one rule per "
              "address)");
    struct pf_config cfg;
    parse_ok("allow 192.168.2.*\n"
             "deny 192.168.2.1?\n"
             "allow fe80:*\n"
             "deny 2001:618:*:e43f\n"
             "0.0.0.0     80        192.168.1.2     80\n"
             "::1         80        192.168.1.2     80\n"
             "0.0.0.0     81        fe80::1         80\n"
             "127.0.0.1   4000      127.0.0.1       3000\n"
             "127.0.0.1   4001      127.0.0.1       22           [timeout=1200]\n"
             "logfile /var/log/rinetd.log\n"
             "logcommon\n",
             &cfg);
    cr_assert_eq(cfg.nrules, 5);
    assert_rule(&cfg.rules[0], "0.0.0.0", "80", "192.168.1.2", "80");
    assert_rule(&cfg.rules[1], "::1", "80", "192.168.1.2", "80");
    assert_rule(&cfg.rules[2], "0.0.0.0", "81", "fe80::1", "80");
    assert_rule(&cfg.rules[3], "127.0.0.1", "4000", "127.0.0.1", "3000");
    assert_rule(&cfg.rules[4], "127.0.0.1", "4001", "127.0.0.1", "22");
    cr_assert_eq(cfg.rules[4].timeout, 1200.0);
    cr_assert_eq(cfg.rules[4].line, 9);
    cr_assert_eq(cfg.access.nallow, 2);
    cr_assert_eq(cfg.access.ndeny, 2);
    cr_assert_str_eq(cfg.access.allow[0], "192.168.2.*");
    cr_assert_str_eq(cfg.access.allow[1], "fe80:*");
    cr_assert_str_eq(cfg.access.deny[0], "192.168.2.1?");
    cr_assert_str_eq(cfg.access.deny[1], "2001:618:*:e43f");
    cr_assert_str_eq(cfg.logfile, "/var/log/rinetd.log");
    cr_assert(cfg.logcommon);
    pf_config_free(&cfg);
}

T(ipv6, "IPv6 literals, bare or in brackets (stripped), with a zone, IPv4-mapped")
{
    struct pf_config cfg;
    parse_ok(":: 8080 [::1] 80\n"
             "[::] 8081 [fe80::1%eth0] 80\n"
             "[2001:db8::1] 8082 ::ffff:10.0.0.1 80\n"
             "0 8083 localhost 80\n",
             &cfg);
    cr_assert_eq(cfg.nrules, 4);
    assert_rule(&cfg.rules[0], "::", "8080", "::1", "80");
    assert_rule(&cfg.rules[1], "::", "8081", "fe80::1%eth0", "80");
    assert_rule(&cfg.rules[2], "2001:db8::1", "8082", "::ffff:10.0.0.1", "80");
    assert_rule(&cfg.rules[3], "0", "8083", "localhost", "80");
    pf_config_free(&cfg);
}

T(hostnames, "host names on both sides are kept as written")
{
    struct pf_config cfg;
    parse_ok("my-host.example.com 80 backend_1.internal. 8080\n", &cfg);
    assert_rule(&cfg.rules[0], "my-host.example.com", "80", "backend_1.internal.", "8080");
    pf_config_free(&cfg);
}

T(service_names, "service names are kept as written; /tcp is dropped")
{
    struct pf_config cfg;
    parse_ok("0.0.0.0 http 10.0.0.1 ssh\n"
             "::1 80/tcp 10.0.0.1 8080/tcp\n"
             "0.0.0.0 https/tcp 10.0.0.1 1\n"
             "0.0.0.0 65535 10.0.0.1 0080\n",
             &cfg);
    cr_assert_eq(cfg.nrules, 4);
    assert_rule(&cfg.rules[0], "0.0.0.0", "http", "10.0.0.1", "ssh");
    assert_rule(&cfg.rules[1], "::1", "80", "10.0.0.1", "8080");
    assert_rule(&cfg.rules[2], "0.0.0.0", "https", "10.0.0.1", "1");
    assert_rule(&cfg.rules[3], "0.0.0.0", "65535", "10.0.0.1", "0080");
    pf_config_free(&cfg);
}

T(options, "[timeout=SEC] and [src=ADDR], alone, together, with blanks, attached")
{
    struct pf_config cfg;
    parse_ok("1.1.1.1 1 2.2.2.2 2 [timeout=1200]\n"
             "1.1.1.1 2 2.2.2.2 2 [src=10.1.1.2]\n"
             "1.1.1.1 3 2.2.2.2 2 [src=192.168.1.2,timeout=1200]\n"
             "1.1.1.1 4 2.2.2.2 2   [ timeout = 30 ,\tsrc = ::1 ]  \n"
             "1.1.1.1 5 2.2.2.2 2 [src=[fe80::2]]\n"
             "1.1.1.1 6 2.2.2.2 2[timeout=5]\n"
             "1.1.1.1 7 2.2.2.2 2 [timeout=1.5]\n"
             "1.1.1.1 8 2.2.2.2 2 [timeout=0]\n"
             "1.1.1.1 9 2.2.2.2 2 [src=gw.example.com] # a comment\n",
             &cfg);
    cr_assert_eq(cfg.nrules, 9);
    struct pf_rule *r = cfg.rules;
    cr_assert_eq(r[0].timeout, 1200.0);
    cr_assert_null(r[0].source);
    cr_assert_eq(r[1].timeout, 0.0);
    cr_assert_str_eq(r[1].source, "10.1.1.2");
    cr_assert_eq(r[2].timeout, 1200.0);
    cr_assert_str_eq(r[2].source, "192.168.1.2");
    cr_assert_eq(r[3].timeout, 30.0);
    cr_assert_str_eq(r[3].source, "::1");
    cr_assert_str_eq(r[4].source, "fe80::2");
    assert_rule(&r[5], "1.1.1.1", "6", "2.2.2.2", "2");
    cr_assert_eq(r[5].timeout, 5.0);
    cr_assert_eq(r[6].timeout, 1.5);
    cr_assert_eq(r[7].timeout, 0.0);
    cr_assert_str_eq(r[8].source, "gw.example.com");
    pf_config_free(&cfg);
}

T(global_and_rule_access, "allow/deny before the first rule are global, after a rule that rule's")
{
    struct pf_config cfg;
    parse_ok("allow 10.*\n"
             "deny 10.0.0.1\n"
             "allow 192.168.*\n"
             "0.0.0.0 80 1.2.3.4 80\n"
             "deny 10.0.0.2\n"
             "allow 10.0.*\n"
             "0.0.0.0 81 1.2.3.4 80\n"
             "0.0.0.0 82 1.2.3.4 80\n"
             "deny ::1\n"
             "deny 10.9.*\n",
             &cfg);
    cr_assert_eq(cfg.access.nallow, 2);
    cr_assert_str_eq(cfg.access.allow[0], "10.*");
    cr_assert_str_eq(cfg.access.allow[1], "192.168.*");
    cr_assert_eq(cfg.access.ndeny, 1);
    cr_assert_str_eq(cfg.access.deny[0], "10.0.0.1");
    cr_assert_eq(cfg.nrules, 3);
    cr_assert_eq(cfg.rules[0].access.nallow, 1);
    cr_assert_str_eq(cfg.rules[0].access.allow[0], "10.0.*");
    cr_assert_eq(cfg.rules[0].access.ndeny, 1);
    cr_assert_str_eq(cfg.rules[0].access.deny[0], "10.0.0.2");
    cr_assert_eq(cfg.rules[1].access.nallow, 0);
    cr_assert_eq(cfg.rules[1].access.ndeny, 0);
    cr_assert_eq(cfg.rules[2].access.nallow, 0);
    cr_assert_eq(cfg.rules[2].access.ndeny, 2);
    cr_assert_str_eq(cfg.rules[2].access.deny[0], "::1");
    cr_assert_str_eq(cfg.rules[2].access.deny[1], "10.9.*");
    pf_config_free(&cfg);
}

T(keywords, "logfile, pidlogfile, pidfile, logcommon; quoted paths keep blanks and '#'")
{
    struct pf_config cfg;
    parse_ok("logfile /var/log/rinetd.log\npidlogfile /run/rinetd.pid\nlogcommon\n", &cfg);
    cr_assert_str_eq(cfg.logfile, "/var/log/rinetd.log");
    cr_assert_str_eq(cfg.pidfile, "/run/rinetd.pid");
    cr_assert(cfg.logcommon);
    pf_config_free(&cfg);

    parse_ok("pidfile /tmp/p.pid\nlogfile \"/tmp/my logs/#1.log\" # comment\n"
             "logcommon\nlogcommon\n",
             &cfg);
    cr_assert_str_eq(cfg.pidfile, "/tmp/p.pid");
    cr_assert_str_eq(cfg.logfile, "/tmp/my logs/#1.log");
    cr_assert(cfg.logcommon);
    pf_config_free(&cfg);
}

T(trailing_comments, "a '#' ends the words anywhere, with or without a blank before it")
{
    struct pf_config cfg;
    parse_ok("allow 10.*# office\n"
             "0.0.0.0 80 1.2.3.4 80 # web\n"
             "0.0.0.0 81 1.2.3.4 81#web\n"
             "deny 10.0.0.1\t#bad\n"
             "logcommon # yes\n"
             "logfile /var/log/x.log#not part of the path\n",
             &cfg);
    cr_assert_eq(cfg.nrules, 2);
    cr_assert_str_eq(cfg.access.allow[0], "10.*");
    assert_rule(&cfg.rules[1], "0.0.0.0", "81", "1.2.3.4", "81");
    cr_assert_str_eq(cfg.rules[1].access.deny[0], "10.0.0.1");
    cr_assert(cfg.logcommon);
    cr_assert_str_eq(cfg.logfile, "/var/log/x.log");
    pf_config_free(&cfg);
}

T(crlf, "CRLF line ends are accepted, and lines still count right")
{
    struct pf_config cfg;
    parse_ok("# dos\r\n\r\n0.0.0.0 80 1.2.3.4 80 [timeout=3]\r\nallow 10.*\r\nlogfile /x.log\r\n"
             "logcommon\r",
             &cfg);
    cr_assert_eq(cfg.nrules, 1);
    cr_assert_eq(cfg.rules[0].line, 3);
    cr_assert_eq(cfg.rules[0].timeout, 3.0);
    cr_assert_str_eq(cfg.rules[0].access.allow[0], "10.*");
    cr_assert_str_eq(cfg.logfile, "/x.log");
    cr_assert(cfg.logcommon);
    pf_config_free(&cfg);
    parse_err("# dos\r\n\r\n0.0.0.0 80 1.2.3.4 0\r\n",
              "t.conf:3: connect port '0' is out of range (1-65535)");
}

T(no_final_newline, "the last line needs no newline")
{
    struct pf_config cfg;
    parse_ok("0.0.0.0 80 1.2.3.4 80\n0.0.0.0 81 1.2.3.4 81", &cfg);
    cr_assert_eq(cfg.nrules, 2);
    cr_assert_eq(cfg.rules[1].line, 2);
    assert_rule(&cfg.rules[1], "0.0.0.0", "81", "1.2.3.4", "81");
    pf_config_free(&cfg);
}

T(tabs, "tabs separate words like spaces")
{
    struct pf_config cfg;
    parse_ok("\t0.0.0.0\t80\t\t1.2.3.4 \t80\t\n", &cfg);
    assert_rule(&cfg.rules[0], "0.0.0.0", "80", "1.2.3.4", "80");
    pf_config_free(&cfg);
}

T(not_nul_terminated, "the text need not be NUL-terminated: len bounds it")
{
    static const char text[] = "0.0.0.0 80 1.2.3.4 8080";
    char buf[sizeof text - 1];
    memcpy(buf, text, sizeof buf); /* no NUL anywhere */
    struct pf_config cfg;
    cr_assert_eq(pf_config_parse(buf, sizeof buf, "t.conf", &cfg, err, sizeof err), 0, "%s", err);
    assert_rule(&cfg.rules[0], "0.0.0.0", "80", "1.2.3.4", "8080");
    pf_config_free(&cfg);
    /* and a prefix stops where len says */
    cr_assert_eq(pf_config_parse(buf, 21, "t.conf", &cfg, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(cfg.rules[0].connect_port, "80");
    pf_config_free(&cfg);
}

T(many_rules, "no limit on rules or patterns: 20000 rules, 5000 patterns on one rule")
{
    size_t cap = 30000 * 48, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (int i = 0; i < 20000; i++)
        len += (size_t)snprintf(text + len, cap - len, "0.0.0.0 %d 10.0.0.1 %d\n", 1 + i, 2 + i);
    for (int i = 0; i < 5000; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s 10.%d.*\n", i % 2 ? "deny" : "allow", i);
    struct pf_config cfg;
    int rc = pf_config_parse(text, len, "t.conf", &cfg, err, sizeof err);
    free(text);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg.nrules, 20000);
    cr_assert_str_eq(cfg.rules[19999].bind_port, "20000");
    cr_assert_eq(cfg.rules[19999].line, 20000);
    cr_assert_eq(cfg.rules[19999].access.nallow, 2500);
    cr_assert_eq(cfg.rules[19999].access.ndeny, 2500);
    cr_assert_str_eq(cfg.rules[19999].access.deny[2499], "10.4999.*");
    pf_config_free(&cfg);
}

T(longest_line, "a line of exactly 4096 bytes (without its CRLF) is accepted")
{
    char *text = malloc(4096 + 3);
    cr_assert_not_null(text);
    memset(text, ' ', 4096);
    memcpy(text, "0.0.0.0 80 1.2.3.4 80 #", 23);
    memcpy(text + 4096, "\r\n", 3);
    struct pf_config cfg;
    int rc = pf_config_parse(text, 4098, "t.conf", &cfg, err, sizeof err);
    free(text);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg.nrules, 1);
    pf_config_free(&cfg);
}

T(load, "pf_config_load reads a file and names it in messages")
{
    char path[] = "/tmp/test_portfwd_config_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static const char text[] = "0.0.0.0 80 1.2.3.4 80\nallow 10.*\n";
    cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    struct pf_config cfg;
    int rc = pf_config_load(path, &cfg, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg.nrules, 1);
    cr_assert_str_eq(cfg.rules[0].access.allow[0], "10.*");
    pf_config_free(&cfg);

    FILE *f = fopen(path, "a");
    cr_assert_not_null(f);
    fputs("deny\n", f);
    fclose(f);
    char want[600];
    snprintf(want, sizeof want, "%s:3: 'deny' needs a pattern", path);
    cr_assert_eq(pf_config_load(path, &cfg, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, want);
    assert_empty(&cfg);
    unlink(path);

    snprintf(want, sizeof want, "%s: %s", path, strerror(ENOENT));
    cr_assert_eq(pf_config_load(path, &cfg, err, sizeof err), -ENOENT);
    cr_assert_str_eq(err, want);
    assert_empty(&cfg);

    cr_assert_eq(pf_config_load("/", &cfg, err, sizeof err), -EISDIR);
    snprintf(want, sizeof want, "/: %s", strerror(EISDIR));
    cr_assert_str_eq(err, want);
    assert_empty(&cfg);
}

T(load_big, "pf_config_load reads files larger than its first buffer")
{
    char path[] = "/tmp/test_portfwd_config_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 3000; i++)
        fprintf(f, "127.0.0.1 %d localhost %d # rule %d\n", 10000 + i, 20000 + i, i);
    fclose(f);
    struct pf_config cfg;
    int rc = pf_config_load(path, &cfg, err, sizeof err);
    unlink(path);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg.nrules, 3000);
    cr_assert_str_eq(cfg.rules[2999].connect_port, "22999");
    pf_config_free(&cfg);
}

/* ------------------------------------------------------------ errors: ports */

T(port_zero, "connect port 0 is refused; bind port 0 lets the kernel choose")
{
    parse_err("0.0.0.0 80 1.2.3.4 0\n", "t.conf:1: connect port '0' is out of range (1-65535)");
    struct pf_config cfg;
    char msg[256];
    cr_assert_eq(pf_config_parse("0.0.0.0 000 1.2.3.4 80\n", 21, "t.conf", &cfg, msg, sizeof msg),
                 0, "%s", msg);
    cr_assert_eq(cfg.nrules, 1);
    cr_assert_str_eq(cfg.rules[0].bind_port, "000");
    pf_config_free(&cfg);
}

T(port_too_big, "ports above 65535 are refused, however many digits")
{
    parse_err("0.0.0.0 65536 1.2.3.4 80\n",
              "t.conf:1: bind port '65536' is out of range (0-65535)");
    parse_err("0.0.0.0 80 1.2.3.4 99999999999999999999999\n",
              "t.conf:1: connect port '99999999999999999999999' is out of range (1-65535)");
}

T(port_malformed, "a port that is neither digits nor a service-name-like word")
{
    parse_err("0.0.0.0 8o 1.2.3.4 80\n", "t.conf:1: bad bind port '8o'");
    parse_err("0.0.0.0 -1 1.2.3.4 80\n", "t.conf:1: bad bind port '-1'");
    parse_err("0.0.0.0 80 1.2.3.4 +80\n", "t.conf:1: bad connect port '+80'");
    parse_err("0.0.0.0 ht.tp 1.2.3.4 80\n", "t.conf:1: bad bind port 'ht.tp'");
    parse_err("0.0.0.0 /tcp 1.2.3.4 80\n", "t.conf:1: bad bind port '/tcp'");
    parse_err("0.0.0.0 80 1.2.3.4 [80]\n", "t.conf:1: bad connect port '[80]'");
}

T(port_unknown_service, "a name getservbyname(name, \"tcp\") does not know")
{
    parse_err("0.0.0.0 nosuchservice 1.2.3.4 80\n",
              "t.conf:1: bind port 'nosuchservice' is neither a number nor a known TCP service");
    parse_err("0.0.0.0 80 1.2.3.4 HTTP\n",
              "t.conf:1: connect port 'HTTP' is neither a number nor a known TCP service");
}

T(port_udp, "UDP rules are refused, saying so")
{
    parse_err("127.0.0.1   4000/udp  127.0.0.1       22           [timeout=1200]\n",
              "t.conf:1: UDP forwarding (bind port '4000/udp') is not supported: portfwd "
              "forwards TCP only");
    parse_err("0.0.0.0 80 1.2.3.4 53/udp\n",
              "t.conf:1: UDP forwarding (connect port '53/udp') is not supported: portfwd "
              "forwards TCP only");
}

T(port_protocol, "a protocol other than /tcp and /udp")
{
    parse_err("0.0.0.0 80/sctp 1.2.3.4 80\n",
              "t.conf:1: bad protocol in bind port '80/sctp' (only /tcp is supported)");
    parse_err("0.0.0.0 80 1.2.3.4 80/TCP\n",
              "t.conf:1: bad protocol in connect port '80/TCP' (only /tcp is supported)");
    parse_err("0.0.0.0 80/ 1.2.3.4 80\n",
              "t.conf:1: bad protocol in bind port '80/' (only /tcp is supported)");
}

/* ------------------------------------------------------------ errors: addresses */

T(bad_addresses, "addresses with characters no host or literal has, unbalanced brackets")
{
    parse_err("0.0.0.0/8 80 1.2.3.4 80\n", "t.conf:1: bad bind address '0.0.0.0/8'");
    parse_err("[::1 80 1.2.3.4 80\n", "t.conf:1: bad bind address '[::1'");
    parse_err("::1] 80 1.2.3.4 80\n", "t.conf:1: bad bind address '::1]'");
    parse_err("[1.2.3.4] 80 1.2.3.4 80\n", "t.conf:1: bad bind address '[1.2.3.4]'");
    parse_err("[] 80 1.2.3.4 80\n", "t.conf:1: bad bind address '[]'");
    parse_err("0.0.0.0 80 host*name 80\n", "t.conf:1: bad connect address 'host*name'");
    parse_err("0.0.0.0 80 [fe80::1%] 80\n", "t.conf:1: bad connect address '[fe80::1%]'");
    parse_err("0.0.0.0 80 [::g] 80\n", "t.conf:1: bad connect address '[::g]'");
    parse_err("\"0.0.0.0\" 80 1.2.3.4 80\n", "t.conf:1: unexpected quoted string \"0.0.0.0\"");
    parse_err("0.0.0.0 80 \"1.2.3.4\" 80\n",
              "t.conf:1: bad connect address \"1.2.3.4\" (no quotes here)");
}

/* ------------------------------------------------------------ errors: words */

T(too_few_words, "a rule with fewer than four words")
{
    parse_err("0.0.0.0 80 1.2.3.4\n",
              "t.conf:1: incomplete forwarding rule: expected bindaddress bindport "
              "connectaddress connectport [options], got 3 words");
    parse_err("0.0.0.0 80 # 1.2.3.4 80\n",
              "t.conf:1: incomplete forwarding rule: expected bindaddress bindport "
              "connectaddress connectport [options], got 2 words");
    parse_err("0.0.0.0\n", "t.conf:1: incomplete forwarding rule: expected bindaddress bindport "
                           "connectaddress connectport [options], got 1 word");
}

T(too_many_words, "a fifth word that is not an option list")
{
    parse_err("0.0.0.0 80 1.2.3.4 80 90\n",
              "t.conf:1: unexpected '90' after the connect port (options go in [...])");
    parse_err("0.0.0.0 80 1.2.3.4 80 timeout=5\n",
              "t.conf:1: unexpected 'timeout=5' after the connect port (options go in [...])");
}

T(unknown_keyword, "a word that is no keyword, on a line too short for a rule")
{
    parse_err("bogus\n", "t.conf:1: unknown keyword 'bogus'");
    parse_err("logfle /var/log/x\n", "t.conf:1: unknown keyword 'logfle'");
    parse_err("Allow 10.0.0.1\n", "t.conf:1: unknown keyword 'Allow'");
    parse_err("LOGCOMMON\n", "t.conf:1: unknown keyword 'LOGCOMMON'");
}

T(access_no_pattern, "allow and deny without a pattern")
{
    parse_err("allow\n", "t.conf:1: 'allow' needs a pattern");
    parse_err("0.0.0.0 80 1.2.3.4 80\ndeny   # nobody\n", "t.conf:2: 'deny' needs a pattern");
}

T(access_extra_words, "allow and deny take exactly one pattern")
{
    parse_err("allow 1.2.3.4 5.6.7.8\n", "t.conf:1: unexpected '5.6.7.8' after the allow pattern");
    parse_err("deny 1.2.3.4 x\n", "t.conf:1: unexpected 'x' after the deny pattern");
}

T(access_bad_pattern, "host names and other characters are refused in patterns")
{
    parse_err("allow example.com\n",
              "t.conf:1: bad allow pattern 'example.com' (an IP address, with '*' and '?'; no "
              "host names)");
    parse_err("deny 10.0.0.0/8\n",
              "t.conf:1: bad deny pattern '10.0.0.0/8' (an IP address, with '*' and '?'; no "
              "host names)");
    parse_err("deny \"10.*\"\n", "t.conf:1: bad deny pattern \"10.*\" (no quotes here)");
}

T(path_missing, "logfile, pidlogfile and pidfile need a path")
{
    parse_err("logfile\n", "t.conf:1: 'logfile' needs a path");
    parse_err("logfile   # none\n", "t.conf:1: 'logfile' needs a path");
    parse_err("pidlogfile\n", "t.conf:1: 'pidlogfile' needs a path");
    parse_err("pidfile\n", "t.conf:1: 'pidfile' needs a path");
    parse_err("logfile \"\"\n", "t.conf:1: 'logfile' has an empty path");
}

T(path_extra, "a path with blanks must be quoted; quotes must close and end the word")
{
    parse_err("logfile /var/log/my log\n",
              "t.conf:1: unexpected 'log' after the path (quote a path with blanks in it)");
    parse_err("logfile \"/var/log/x\n", "t.conf:1: unterminated quoted string");
    parse_err("logfile \"/var/log/x\"y\n", "t.conf:1: unexpected text after a closing quote");
    parse_err("logcommon yes\n", "t.conf:1: unexpected 'yes' after 'logcommon'");
}

T(path_twice, "logfile and the pid file may be given once each")
{
    parse_err("logfile /a\n# b\nlogfile /b\n", "t.conf:3: 'logfile' given twice (first on line 1)");
    parse_err("pidlogfile /a\npidfile /b\n", "t.conf:2: 'pidfile' given twice (first on line 1)");
}

/* ------------------------------------------------------------ errors: options */

T(option_unknown, "an option other than timeout and src")
{
    parse_err("0.0.0.0 80 1.2.3.4 80 [foo=1]\n",
              "t.conf:1: unknown option 'foo' (portfwd knows timeout=SEC and src=ADDR)");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=1,Src=1.2.3.4]\n",
              "t.conf:1: unknown option 'Src' (portfwd knows timeout=SEC and src=ADDR)");
}

T(option_values, "options without '=', with an empty or malformed value")
{
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout]\n",
              "t.conf:1: option 'timeout' needs a value (timeout=SEC)");
    parse_err("0.0.0.0 80 1.2.3.4 80 [src 1.2.3.4]\n",
              "t.conf:1: option 'src' needs a value (src=ADDR)");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=]\n",
              "t.conf:1: option 'timeout' has an empty value");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=abc]\n", "t.conf:1: bad timeout 'abc' (seconds)");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=-5]\n", "t.conf:1: bad timeout '-5' (seconds)");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=1e3]\n", "t.conf:1: bad timeout '1e3' (seconds)");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=5.]\n", "t.conf:1: bad timeout '5.' (seconds)");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=.5]\n", "t.conf:1: bad timeout '.5' (seconds)");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=99999999999]\n",
              "t.conf:1: timeout '99999999999' is too large (at most 2147483647 seconds)");
    parse_err("0.0.0.0 80 1.2.3.4 80 [src=bad/addr]\n", "t.conf:1: bad source address 'bad/addr'");
    parse_err("0.0.0.0 80 1.2.3.4 80 [src=[::1]x]\n",
              "t.conf:1: expected ',' between options, got 'x'");
}

T(option_twice, "each option at most once per rule")
{
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=1,timeout=2]\n",
              "t.conf:1: option 'timeout' given twice");
    parse_err("0.0.0.0 80 1.2.3.4 80 [src=::1, src=::2]\n", "t.conf:1: option 'src' given twice");
}

T(option_syntax, "brackets, commas and what follows the list")
{
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=1\n", "t.conf:1: missing ']' after the options");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=1 # ]\n", "t.conf:1: missing ']' after the options");
    parse_err("0.0.0.0 80 1.2.3.4 80 []\n", "t.conf:1: empty option list '[]'");
    parse_err("0.0.0.0 80 1.2.3.4 80 [  ]\n", "t.conf:1: empty option list '[]'");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=1 src=::1]\n",
              "t.conf:1: expected ',' between options, got 'src=::1'");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=1,]\n", "t.conf:1: missing option name in [...]");
    parse_err("0.0.0.0 80 1.2.3.4 80 [,timeout=1]\n", "t.conf:1: missing option name in [...]");
    parse_err("0.0.0.0 80 1.2.3.4 80 [=1]\n", "t.conf:1: missing option name in [...]");
    parse_err("0.0.0.0 80 1.2.3.4 80 [*x=1]\n", "t.conf:1: bad option at '*'");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=1] extra\n",
              "t.conf:1: unexpected 'extra' after the options");
    parse_err("0.0.0.0 80 1.2.3.4 80 [timeout=1][src=::1]\n",
              "t.conf:1: unexpected '[src=::1]' after the options");
}

/* ------------------------------------------------------------ errors: bytes */

T(overlong_line, "a line over 4096 bytes is refused, naming its line")
{
    char *text = malloc(4097 + 30);
    cr_assert_not_null(text);
    strcpy(text, "# first\n");
    size_t off = strlen(text);
    memset(text + off, '#', 4097);
    strcpy(text + off + 4097, "\nlogcommon\n");
    parse_err(text, "t.conf:2: line too long (more than 4096 bytes)");
    free(text);
}

T(nul_byte, "a NUL byte is refused, in a rule or in a comment")
{
    static const char a[] = "0.0.0.0 80\0 1.2.3.4 80\n";
    parse_err_n(a, sizeof a - 1, "t.conf:1: NUL byte in line");
    static const char b[] = "# fine\n# not\0fine\n";
    parse_err_n(b, sizeof b - 1, "t.conf:2: NUL byte in line");
    static const char c[] = "\0";
    parse_err_n(c, 1, "t.conf:1: NUL byte in line");
}

T(stray_cr, "a carriage return not before a newline is refused")
{
    parse_err("0.0.0.0\r80 1.2.3.4 80\n", "t.conf:1: carriage return inside a line");
    parse_err("logcommon\r\r\n", "t.conf:1: carriage return inside a line");
    parse_err("# old mac\rlogcommon\r", "t.conf:1: carriage return inside a line");
}

T(control_chars, "control characters other than tab are refused")
{
    parse_err("logcommon\x01\n", "t.conf:1: control character 0x01 in line");
    parse_err("\n\n# \x1b[1mbold\n", "t.conf:3: control character 0x1b in line");
    parse_err("logfile /x\x7f\n", "t.conf:1: control character 0x7f in line");
    parse_err("\f\n", "t.conf:1: control character 0x0c in line");
}

/* ------------------------------------------------------------ errors: misc */

T(error_line_numbers, "the error names the line it is on, after good lines and comments")
{
    parse_err("# c\n0.0.0.0 80 1.2.3.4 80\nallow 10.*\n\n   \n0.0.0.0 81 1.2.3.4 81/udp\n",
              "t.conf:6: UDP forwarding (connect port '81/udp') is not supported: portfwd "
              "forwards TCP only");
}

T(error_quotes_cut, "long words are quoted in messages up to 64 bytes, then '...'")
{
    char text[256];
    char word[101];
    word[100] = '\0';
    char want[256];
    memset(word, 'g', 100);
    snprintf(text, sizeof text, "allow %s\n", word);
    snprintf(want, sizeof want,
             "t.conf:1: bad allow pattern '%.64s...' (an IP address, with '*' and '?'; no host "
             "names)",
             word);
    parse_err(text, want);
}

T(error_buffers, "a short err buffer is truncated and terminated; NULL err is fine; NULL name")
{
    struct pf_config cfg;
    char small[8];
    memset(small, 'x', sizeof small);
    cr_assert_eq(pf_config_parse("bogus", 5, "t.conf", &cfg, small, sizeof small), -EINVAL);
    cr_assert_str_eq(small, "t.conf:");
    cr_assert_eq(pf_config_parse("bogus", 5, "t.conf", &cfg, NULL, 0), -EINVAL);
    assert_empty(&cfg);
    small[0] = 'x';
    cr_assert_eq(pf_config_parse("bogus", 5, "t.conf", &cfg, small, 1), -EINVAL);
    cr_assert_eq(small[0], '\0');
    cr_assert_eq(pf_config_parse("bogus", 5, NULL, &cfg, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "(config):1: unknown keyword 'bogus'");
    /* success leaves an empty message */
    cr_assert_eq(pf_config_parse("logcommon", 9, "t.conf", &cfg, err, sizeof err), 0);
    cr_assert_str_eq(err, "");
    pf_config_free(&cfg);
    pf_config_free(NULL);
}

T(error_after_rules, "an error after rules, patterns and paths leaves *out empty (ASan: no leak)")
{
    parse_err("allow 10.*\ndeny 10.0.0.1\nlogfile /l\npidlogfile /p\nlogcommon\n"
              "0.0.0.0 80 1.2.3.4 80 [src=::1,timeout=3]\nallow 1.*\n"
              "0.0.0.0 81 1.2.3.4 81 [src=::1,src=::2]\n",
              "t.conf:8: option 'src' given twice");
}

/* ------------------------------------------------------------ pattern match */

T(match_exact, "without wildcards a pattern matches only itself")
{
    cr_assert(pf_pattern_match("10.0.0.1", "10.0.0.1"));
    cr_assert(!pf_pattern_match("10.0.0.1", "10.0.0.10"));
    cr_assert(!pf_pattern_match("10.0.0.10", "10.0.0.1"));
    cr_assert(pf_pattern_match("", ""));
    cr_assert(!pf_pattern_match("", "1"));
    cr_assert(!pf_pattern_match(NULL, "1"));
    cr_assert(!pf_pattern_match("1", NULL));
}

T(match_star, "'*' matches any run of characters, the empty one too")
{
    cr_assert(pf_pattern_match("*", ""));
    cr_assert(pf_pattern_match("*", "192.168.2.1"));
    cr_assert(pf_pattern_match("192.168.2.*", "192.168.2.1"));
    cr_assert(pf_pattern_match("192.168.2.*", "192.168.2.255"));
    cr_assert(pf_pattern_match("192.168.2.*", "192.168.2."));
    cr_assert(!pf_pattern_match("192.168.2.*", "192.168.20.1"));
    cr_assert(pf_pattern_match("*.1", "10.0.0.1"));
    cr_assert(!pf_pattern_match("*.1", "10.0.0.12"));
    cr_assert(pf_pattern_match("10.*.1", "10.0.0.1"));
    cr_assert(pf_pattern_match("10.*.*.1", "10.0.0.1"));
    cr_assert(pf_pattern_match("2001:618:*:e43f", "2001:618:1:2:3:4:5:e43f"));
    cr_assert(pf_pattern_match("**", "x"));
}

T(match_question, "'?' matches exactly one character")
{
    cr_assert(pf_pattern_match("192.168.2.1?", "192.168.2.10"));
    cr_assert(pf_pattern_match("192.168.2.1?", "192.168.2.19"));
    cr_assert(!pf_pattern_match("192.168.2.1?", "192.168.2.1"));
    cr_assert(!pf_pattern_match("192.168.2.1?", "192.168.2.100"));
    cr_assert(pf_pattern_match("?", "a"));
    cr_assert(!pf_pattern_match("?", ""));
    cr_assert(pf_pattern_match("1?.*", "10.0.0.1"));
}

T(match_case, "matching ignores case (IPv6 hex digits)")
{
    cr_assert(pf_pattern_match("FE80::*", "fe80::1"));
    cr_assert(pf_pattern_match("fe80::ABCD", "FE80::abcd"));
    cr_assert(!pf_pattern_match("fe80::abcd", "fe80::abce"));
}

T(match_pathological, "many stars against a long near-miss finish quickly")
{
    char text[4001];
    memset(text, 'a', 4000);
    text[4000] = '\0';
    cr_assert(!pf_pattern_match("*a*a*a*a*a*a*a*a*a*a*b", text));
    cr_assert(pf_pattern_match("*a*a*a*a*a*a*a*a*a*a*", text));
}

/* ------------------------------------------------------------ access rules */

static struct pf_config access_cfg(const char *text)
{
    struct pf_config cfg;
    parse_ok(text, &cfg);
    return cfg;
}

T(allowed_no_patterns, "without any pattern everyone is allowed")
{
    struct pf_config cfg = access_cfg("0.0.0.0 80 1.2.3.4 80\n");
    cr_assert(pf_allowed(&cfg, &cfg.rules[0], "10.0.0.1"));
    cr_assert(pf_allowed(&cfg, NULL, "::1"));
    cr_assert(pf_allowed(NULL, NULL, "::1"));
    pf_config_free(&cfg);
}

T(allowed_global_allow, "a global allow list refuses an unmatched address, whatever the rule says")
{
    struct pf_config cfg = access_cfg("allow 192.168.*\nallow 10.0.0.?\n"
                                      "0.0.0.0 80 1.2.3.4 80\nallow 172.16.*\n"
                                      "0.0.0.0 81 1.2.3.4 81\n");
    struct pf_rule *r0 = &cfg.rules[0], *r1 = &cfg.rules[1];
    cr_assert(pf_allowed(&cfg, NULL, "192.168.1.1"));
    cr_assert(pf_allowed(&cfg, NULL, "10.0.0.5"));
    cr_assert(!pf_allowed(&cfg, NULL, "10.0.0.55"));
    cr_assert(!pf_allowed(&cfg, r1, "172.16.0.1")); /* rule-allowed, globally not */
    cr_assert(!pf_allowed(&cfg, r0, "172.16.0.1"));
    cr_assert(pf_allowed(&cfg, r1, "192.168.1.1"));
    cr_assert(!pf_allowed(&cfg, r1, "::1"));
    pf_config_free(&cfg);
}

T(allowed_rule_allow, "a rule's allow list refuses an unmatched address for that rule only")
{
    struct pf_config cfg = access_cfg("0.0.0.0 80 1.2.3.4 80\nallow 10.*\nallow ::1\n"
                                      "0.0.0.0 81 1.2.3.4 81\n");
    struct pf_rule *r0 = &cfg.rules[0], *r1 = &cfg.rules[1];
    cr_assert(pf_allowed(&cfg, r0, "10.1.2.3"));
    cr_assert(pf_allowed(&cfg, r0, "::1"));
    cr_assert(!pf_allowed(&cfg, r0, "192.168.1.1"));
    cr_assert(!pf_allowed(&cfg, r0, "::2"));
    cr_assert(pf_allowed(&cfg, r1, "192.168.1.1"));
    cr_assert(pf_allowed(&cfg, NULL, "192.168.1.1"));
    pf_config_free(&cfg);
}

T(allowed_deny, "any matching deny refuses, global or the rule's, even when allowed")
{
    struct pf_config cfg = access_cfg("allow 10.*\ndeny 10.0.0.1\n"
                                      "0.0.0.0 80 1.2.3.4 80\nallow 10.0.*\ndeny 10.0.0.2?\n"
                                      "0.0.0.0 81 1.2.3.4 81\n");
    struct pf_rule *r0 = &cfg.rules[0], *r1 = &cfg.rules[1];
    cr_assert(!pf_allowed(&cfg, NULL, "10.0.0.1"));
    cr_assert(!pf_allowed(&cfg, r0, "10.0.0.1"));
    cr_assert(!pf_allowed(&cfg, r1, "10.0.0.1"));
    cr_assert(!pf_allowed(&cfg, r0, "10.0.0.20"));
    cr_assert(pf_allowed(&cfg, r1, "10.0.0.20"));
    cr_assert(pf_allowed(&cfg, r0, "10.0.0.2"));
    cr_assert(pf_allowed(&cfg, r0, "10.0.0.200"));
    cr_assert(!pf_allowed(&cfg, r0, "10.1.0.3")); /* rule's allow unmatched */
    cr_assert(pf_allowed(&cfg, r1, "10.1.0.3"));
    pf_config_free(&cfg);
}

T(allowed_deny_only, "deny lists alone refuse their matches and let the rest through")
{
    struct pf_config cfg = access_cfg("deny fe80:*\n0.0.0.0 80 1.2.3.4 80\ndeny 127.0.0.?\n");
    struct pf_rule *r0 = &cfg.rules[0];
    cr_assert(!pf_allowed(&cfg, r0, "FE80::1"));
    cr_assert(!pf_allowed(&cfg, r0, "127.0.0.1"));
    cr_assert(pf_allowed(&cfg, r0, "127.0.0.10"));
    cr_assert(pf_allowed(&cfg, NULL, "127.0.0.1"));
    cr_assert(pf_allowed(&cfg, r0, "::1"));
    pf_config_free(&cfg);
}

/* ---- issue 8 item 5: a "::" listener sees IPv4 clients as ::ffff:a.b.c.d,
 * and IPv6 has more than one spelling.  Every form of pattern, against an
 * IPv4 client (as an IPv4 listener sees it), the same client as a
 * dual-stack listener sees it, and IPv6 clients. */

/* pf_allowed for one global line "KIND PATTERN" (+ a rule). */
static bool allowed_by(const char *line, const char *client)
{
    char text[256];
    snprintf(text, sizeof text, "%s\n0.0.0.0 80 1.2.3.4 80\n", line);
    struct pf_config cfg;
    parse_ok(text, &cfg);
    bool global = pf_allowed(&cfg, NULL, client);
    /* The same line under the rule says the same. */
    snprintf(text, sizeof text, "0.0.0.0 80 1.2.3.4 80\n%s\n", line);
    struct pf_config cfg2;
    parse_ok(text, &cfg2);
    cr_assert_eq(pf_allowed(&cfg2, &cfg2.rules[0], client), global, "'%s' for %s: rule vs global",
                 line, client);
    pf_config_free(&cfg);
    pf_config_free(&cfg2);
    return global;
}

#define ALLOWED(line, client) cr_assert(allowed_by(line, client), "'%s' refuses %s", line, client)
#define REFUSED(line, client) cr_assert(!allowed_by(line, client), "'%s' lets %s in", line, client)

T(access_v4_mapped_deny, "deny stops an IPv4 client however a listener spells it (exact, *, ?)")
{
    static const char *const spellings[] = {"127.0.0.1", "::ffff:127.0.0.1", "::FFFF:127.0.0.1",
                                            "::ffff:7f00:1", "0:0:0:0:0:ffff:7f00:1"};
    for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
        const char *c = spellings[i];
        REFUSED("deny 127.0.0.1", c);
        REFUSED("deny 127.*", c);
        REFUSED("deny 127.0.0.?", c);
        REFUSED("deny *", c);
        REFUSED("deny ::ffff:127.0.0.1", c); /* an address: compared as one */
        REFUSED("deny ::ffff:7f00:1", c);
        ALLOWED("deny 127.0.0.2", c);
        ALLOWED("deny 10.*", c);
        ALLOWED("deny ::1", c);
        ALLOWED("deny *:*", c); /* IPv4 keeps its dotted text: no ':' in it */
    }
}

T(access_v4_mapped_allow, "allow lets an IPv4 client in however a listener spells it")
{
    static const char *const spellings[] = {"127.0.0.1", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < 2; i++) {
        const char *c = spellings[i];
        ALLOWED("allow 127.0.0.1", c);
        ALLOWED("allow 127.*", c);
        ALLOWED("allow 12?.0.0.1", c);
        ALLOWED("allow ::ffff:127.0.0.1", c);
        REFUSED("allow 127.0.0.2", c);
        REFUSED("allow 10.*", c);
        REFUSED("allow ::1", c);
        REFUSED("allow ::*", c);
    }
}

T(access_v6_as_addresses, "an IPv6 pattern without wildcards is compared as an address")
{
    static const char *const loopback[] = {
        "::1", "0:0:0:0:0:0:0:1", "0000:0000:0000:0000:0000:0000:0000:0001", "::0:1", "0::1"};
    for (size_t i = 0; i < sizeof loopback / sizeof *loopback; i++) {
        char line[128];
        snprintf(line, sizeof line, "deny %s", loopback[i]);
        REFUSED(line, "::1");
        REFUSED(line, "0:0:0:0:0:0:0:1");
        ALLOWED(line, "::2");
        ALLOWED(line, "127.0.0.1");
        ALLOWED(line, "::ffff:127.0.0.1");
        snprintf(line, sizeof line, "allow %s", loopback[i]);
        ALLOWED(line, "::1");
        REFUSED(line, "::2");
        REFUSED(line, "127.0.0.1");
    }
    REFUSED("deny FE80::1", "fe80::1");
    REFUSED("deny fe80:0:0:0:0:0:0:1", "fe80::1");
    REFUSED("deny 2001:db8::1", "2001:0DB8:0000::0001");
    ALLOWED("deny 2001:db8::1", "2001:db8::1:0");
    ALLOWED("deny ::", "::1"); /* "::" is an address, not a wildcard */
    REFUSED("deny ::", "::");
    REFUSED("deny fe80::1", "fe80::1%lo"); /* a zone does not change the address */
}

T(access_v6_wildcards, "an IPv6 wildcard matches the short, full or padded spelling")
{
    REFUSED("deny ::*", "::1");
    REFUSED("deny fe80:*", "fe80::1");
    REFUSED("deny fe80::*", "fe80::abcd");
    REFUSED("deny fe80:0:*", "fe80::1");    /* full spelling */
    REFUSED("deny fe80:0000:*", "fe80::1"); /* padded spelling */
    REFUSED("deny *:0001", "fe80::1");
    REFUSED("deny 0:0:0:0:0:0:0:?", "::1");
    REFUSED("deny 2001:db8:*", "2001:DB8::5");
    REFUSED("deny 2001:618:*:e43f", "2001:618:1::e43f");
    REFUSED("deny *:*", "::1");
    ALLOWED("deny fe80:*", "fe81::1");
    ALLOWED("deny 2001:db8:*", "2001:db9::1");
    ALLOWED("deny ::ffff:*", "::ffff:127.0.0.1"); /* that is 127.0.0.1, dotted */
    ALLOWED("deny ::*", "127.0.0.1");
    ALLOWED("allow ::*", "::1");
    REFUSED("allow ::*", "10.0.0.1");
    REFUSED("allow fe80:*", "::1");
    ALLOWED("allow 0:0:0:0:0:0:0:*", "::1");
    ALLOWED("allow 0000:*:0001", "::1");
}

T(access_global_and_rule_dual_stack, "global and rule lists together on a dual-stack client")
{
    struct pf_config cfg;
    parse_ok("allow 127.*\n"
             "allow ::1\n"
             ":: 80 1.2.3.4 80\n"
             "deny 127.0.0.2\n"
             "deny 0:0:0:0:0:0:0:1\n",
             &cfg);
    const struct pf_rule *r = &cfg.rules[0];
    cr_assert(pf_allowed(&cfg, r, "::ffff:127.0.0.1"));
    cr_assert(!pf_allowed(&cfg, r, "::ffff:127.0.0.2"));
    cr_assert(!pf_allowed(&cfg, r, "::1"));
    cr_assert(pf_allowed(&cfg, NULL, "::1"));
    cr_assert(!pf_allowed(&cfg, NULL, "::ffff:10.0.0.1"));
    cr_assert(!pf_allowed(&cfg, NULL, "::2"));
    cr_assert(!pf_allowed(&cfg, NULL, "not an address"));
    cr_assert(!pf_allowed(&cfg, NULL, ""));
    pf_config_free(&cfg);
}

/* ---- issue 8 item 6: two rules on one address, whichever way written. */

T(duplicate_binds, "a second rule on an address already bound fails, naming both lines")
{
    parse_err("127.0.0.1 8080 10.0.0.1 80\n"
              "# another\n"
              "127.0.0.1 8080 10.0.0.2 80\n",
              "t.conf:3: 127.0.0.1 port 8080 overlaps line 1's 127.0.0.1 port 8080 (one rule "
              "per address)");
    parse_err("0.0.0.0 http 10.0.0.1 80\n0.0.0.0 80/tcp 10.0.0.2 80\n",
              "t.conf:2: 0.0.0.0 port 80 overlaps line 1's 0.0.0.0 port http (one rule per "
              "address)");
    parse_err("[::1] 8080 10.0.0.1 80\n0:0:0:0:0:0:0:1 8080 10.0.0.2 80\n",
              "t.conf:2: 0:0:0:0:0:0:0:1 port 8080 overlaps line 1's ::1 port 8080 (one rule "
              "per address)");
    parse_err("127.0.0.1 8080 10.0.0.1 80\n0.0.0.0 8080 10.0.0.2 80\n",
              "t.conf:2: 0.0.0.0 port 8080 overlaps line 1's 127.0.0.1 port 8080 (one rule "
              "per address)");
    parse_err("0.0.0.0 8080 10.0.0.1 80\n10.1.2.3 8080 10.0.0.2 80\n",
              "t.conf:2: 10.1.2.3 port 8080 overlaps line 1's 0.0.0.0 port 8080 (one rule "
              "per address)");
    parse_err("10.1.2.3 8080 10.0.0.1 80\n:: 8080 10.0.0.2 80\n",
              "t.conf:2: :: port 8080 overlaps line 1's 10.1.2.3 port 8080 (one rule per "
              "address)");
    parse_err(":: 8080 10.0.0.1 80\n::1 8080 10.0.0.2 80\n",
              "t.conf:2: ::1 port 8080 overlaps line 1's :: port 8080 (one rule per address)");
    parse_err("127.0.0.1 8080 10.0.0.1 80\n::ffff:127.0.0.1 8080 10.0.0.2 80\n",
              "t.conf:2: ::ffff:127.0.0.1 port 8080 overlaps line 1's 127.0.0.1 port 8080 (one "
              "rule per address)");
}

T(distinct_binds, "different ports, addresses or families, and port 0, are no duplicates")
{
    struct pf_config cfg;
    parse_ok("127.0.0.1 8080 10.0.0.1 80\n"
             "127.0.0.1 8081 10.0.0.1 80\n"
             "127.0.0.2 8080 10.0.0.1 80\n"
             "::1 8080 10.0.0.1 80\n"
             "0.0.0.0 9000 10.0.0.1 80\n"
             "::1 9000 10.0.0.1 80\n"
             "127.0.0.1 0 10.0.0.1 80\n"
             "127.0.0.1 0 10.0.0.1 81\n"
             "localhost 8080 10.0.0.1 80\n", /* a name: the caller checks it once resolved */
             &cfg);
    cr_assert_eq(cfg.nrules, 9);
    cr_assert_eq(cfg.rules[8].bind_addr.ss_family, AF_UNSPEC);
    cr_assert_eq(cfg.rules[0].bind_addr.ss_family, AF_INET);
    cr_assert_eq(cfg.rules[3].bind_addr.ss_family, AF_INET6);
    pf_config_free(&cfg);
}

/* ---- issue 8 item 10: -l, -p, -r and -P are values, not config text. */

T(add_rule_whole_values, "pf_config_add_rule checks each value whole")
{
    struct pf_config cfg = {0};
    char msg[256];
    cr_assert_eq(pf_config_add_rule(&cfg, "127.0.0.1", "0", "::1", "http", msg, sizeof msg), 0);
    cr_assert_eq(cfg.nrules, 1);
    assert_rule(&cfg.rules[0], "127.0.0.1", "0", "::1", "http");
    pf_config_free(&cfg);
    static const char *const bad[][5] = {
        {"127.0.0.1", "8080", "127.0.0.1 80 #", "9", "bad connect address '127.0.0.1 80 #'"},
        {"127.0.0.1", "8080", "127.0.0.1", "80 #", "bad connect port '80 #'"},
        {"127.0.0.1", "8080", "127.0.0.1", "80[timeout=1]", "bad connect port '80[timeout=1]'"},
        {"127.0.0.1", "8080 10.0.0.1 80", "127.0.0.1", "9", "bad bind port '8080 10.0.0.1 80'"},
        {"127.0.0.1 #", "8080", "127.0.0.1", "9", "bad bind address '127.0.0.1 #'"},
        {"", "8080", "127.0.0.1", "9", "bad bind address ''"},
        {"127.0.0.1", "8080", "\"x\"", "9", "bad connect address '\"x\"'"},
        {"127.0.0.1", "", "127.0.0.1", "9", "bad bind port ''"},
        {"127.0.0.1", "1", "127.0.0.1", "0", "connect port '0' is out of range (1-65535)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct pf_config c = {0};
        int rc =
            pf_config_add_rule(&c, bad[i][0], bad[i][1], bad[i][2], bad[i][3], msg, sizeof msg);
        cr_assert_eq(rc, -EINVAL, "case %zu: rc %d", i, rc);
        cr_assert_str_eq(msg, bad[i][4]);
        pf_config_free(&c);
    }
    char *huge = malloc(5000);
    memset(huge, 'a', 4999);
    huge[4999] = '\0';
    struct pf_config c = {0};
    cr_assert_eq(pf_config_add_rule(&c, "127.0.0.1", huge, "127.0.0.1", "9", msg, sizeof msg),
                 -EINVAL);
    cr_assert(strstr(msg, "is too long"), "%s", msg);
    pf_config_free(&c);
    free(huge);
}
