/* socks5d's users (tools/socks5d/users.h): files that parse and what they
 * hold, every error with its exact "name:line: message", an error leaving
 * the users as they were, -u/-P, and the check itself. */
#include "users.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define T(name, desc) Test(socks_users, name, .timeout = 10, .description = desc)

static char err[512];

/* len bytes of text (may hold NULs) parse as "t.users" into *u. */
static void parse_ok_n(const char *text, size_t len, struct users *u)
{
    memset(err, 'x', sizeof err);
    int rc = users_parse(text, len, "t.users", u, err, sizeof err);
    cr_assert_eq(rc, 0, "rc %d: %s\n--- text:\n%s", rc, err, text);
    cr_assert_str_eq(err, "");
}

static void parse_ok(const char *text, struct users *u) { parse_ok_n(text, strlen(text), u); }

/* len bytes of text fail with exactly `message`, and *u (holding one user
 * "keep", password "kept") is as it was. */
static void parse_err_n(const char *text, size_t len, const char *message)
{
    struct users u = {0};
    cr_assert_eq(users_add(&u, "keep", "kept"), 0);
    memset(err, 'x', sizeof err);
    int rc = users_parse(text, len, "t.users", &u, err, sizeof err);
    cr_assert_eq(rc, -EINVAL, "rc %d (want -EINVAL), err \"%s\"", rc, rc ? err : "");
    cr_assert_str_eq(err, message);
    cr_assert_eq(u.n, 1);
    cr_assert(users_check(&u, "keep", "kept"));
    users_free(&u);
}

static void parse_err(const char *text, const char *message)
{
    parse_err_n(text, strlen(text), message);
}

/* ------------------------------------------------------------ valid files */

T(basic, "one user:password per line; the password split at the first ':'")
{
    struct users u = {0};
    parse_ok("alice:s3cret\nbob:pass:with:colons\n", &u);
    cr_assert_eq(u.n, 2);
    cr_assert(users_check(&u, "alice", "s3cret"));
    cr_assert(users_check(&u, "bob", "pass:with:colons"));
    cr_assert(!users_check(&u, "bob", "pass"));
    cr_assert(!users_check(&u, "bob:pass", "with:colons"));
    cr_assert(!users_check(&u, "alice", "S3cret"));
    cr_assert(!users_check(&u, "Alice", "s3cret"));
    cr_assert(!users_check(&u, "alice", "s3cre"));
    cr_assert(!users_check(&u, "alice", "s3crett"));
    cr_assert(!users_check(&u, "alice", ""));
    cr_assert(!users_check(&u, "carol", "s3cret"));
    cr_assert(!users_check(&u, "", ""));
    users_free(&u);
}

T(empty, "an empty file, a NULL text, comments and blank lines only: valid, no user")
{
    struct users u = {0};
    parse_ok("", &u);
    cr_assert_eq(u.n, 0);
    parse_ok_n(NULL, 0, &u);
    parse_ok("# users\n\n   \n\t \t\n   # indented comment\n#:not:a:user\n\r\n", &u);
    cr_assert_eq(u.n, 0);
    cr_assert(!users_check(&u, "#", "not:a:user"));
    users_free(&u);
}

T(layout, "comments, blank lines, CRLF, a last line without its newline")
{
    struct users u = {0};
    parse_ok("# c\r\n\r\nalice:one\r\n  # x:y\nbob:two\r\ncarol:three", &u);
    cr_assert_eq(u.n, 3);
    cr_assert(users_check(&u, "alice", "one"));
    cr_assert(!users_check(&u, "alice", "one\r"));
    cr_assert(users_check(&u, "bob", "two"));
    cr_assert(users_check(&u, "carol", "three"));
    cr_assert(!users_check(&u, "  # x", "y"));
    users_free(&u);
    parse_ok("dave:four\r", &u);
    cr_assert(users_check(&u, "dave", "four"), "a last line ending in a lone CR");
    users_free(&u);
}

T(nothing_trimmed, "blanks, a '#' past the start and a CR inside a line are part of the fields")
{
    struct users u = {0};
    parse_ok(" a : b \nc:d # not a comment\ne:f\rg\nh\t:\ti\n", &u);
    cr_assert_eq(u.n, 4);
    cr_assert(users_check(&u, " a ", " b "));
    cr_assert(!users_check(&u, "a", "b"));
    cr_assert(users_check(&u, "c", "d # not a comment"));
    cr_assert(users_check(&u, "e", "f\rg"));
    cr_assert(users_check(&u, "h\t", "\ti"));
    users_free(&u);
}

T(longest_fields, "a user and a password of 255 bytes each")
{
    char line[600], user[256], pass[256];
    memset(user, 'u', 255);
    user[255] = '\0';
    memset(pass, 'p', 255);
    pass[255] = '\0';
    snprintf(line, sizeof line, "%s:%s\n", user, pass);
    struct users u = {0};
    parse_ok(line, &u);
    cr_assert(users_check(&u, user, pass));
    pass[254] = 'q';
    cr_assert(!users_check(&u, user, pass), "the last byte counts");
    users_free(&u);
}

T(many, "a thousand users, each found with its own password only")
{
    size_t cap = 1000 * 32, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (int i = 999; i >= 0; i--) /* in reverse: sorting is the parser's job */
        len += (size_t)snprintf(text + len, cap - len, "user%d:pass%d\n", i, i * 7);
    struct users u = {0};
    parse_ok_n(text, len, &u);
    cr_assert_eq(u.n, 1000);
    char name[32], pass[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "user%d", i);
        snprintf(pass, sizeof pass, "pass%d", i * 7);
        cr_assert(users_check(&u, name, pass), "%s", name);
        snprintf(pass, sizeof pass, "pass%d", i * 7 + 1);
        cr_assert(!users_check(&u, name, pass), "%s", name);
    }
    users_free(&u);
    free(text);
}

T(two_files, "a second file adds its users to the first's")
{
    struct users u = {0};
    parse_ok("a:1\nb:2\n", &u);
    parse_ok("c:3\n", &u);
    cr_assert_eq(u.n, 3);
    cr_assert(users_check(&u, "a", "1") && users_check(&u, "b", "2") && users_check(&u, "c", "3"));
    users_free(&u);
}

/* ------------------------------------------------------------ errors */

T(no_colon, "a line without ':' names its line")
{
    parse_err("alice:one\n\n# c\nbob\n", "t.users:4: no ':' in the line");
    parse_err("bob", "t.users:1: no ':' in the line");
    parse_err("a:b\r\n\r\nbob\r\n", "t.users:3: no ':' in the line");
}

T(empty_fields, "an empty user or password")
{
    parse_err(":secret\n", "t.users:1: empty user name");
    parse_err("a:b\nbob:\n", "t.users:2: empty password");
    parse_err("a:b\nbob:\r\n", "t.users:2: empty password");
    parse_err(":\n", "t.users:1: empty user name");
}

T(overlong_fields, "a user or password of 256 bytes")
{
    char line[700];
    memset(line, 'u', 256);
    strcpy(line + 256, ":pw\n");
    parse_err(line, "t.users:1: user name longer than 255 bytes");
    strcpy(line, "ok:ok\nme:");
    memset(line + 9, 'p', 256);
    strcpy(line + 9 + 256, "\n");
    parse_err(line, "t.users:2: password longer than 255 bytes");
    /* 255 + a CR: the CR is the line end, not a 256th byte. */
    strcpy(line, "me:");
    memset(line + 3, 'p', 255);
    strcpy(line + 3 + 255, "\r\n");
    struct users u = {0};
    parse_ok(line, &u);
    users_free(&u);
}

T(nul_byte, "a NUL byte anywhere in a line, a comment included")
{
    parse_err_n("a:b\nc:d\0e\n", 10, "t.users:2: NUL byte in the line");
    parse_err_n("a:b\n#\0\n", 7, "t.users:2: NUL byte in the line");
    parse_err_n("\0", 1, "t.users:1: NUL byte in the line");
}

T(duplicates, "a user given twice: the second line, and where the first was")
{
    parse_err("a:1\nb:2\na:3\n", "t.users:3: user 'a' given twice (first on line 1)");
    parse_err("a:1\nb:2\nb:2\na:3\na:4\n", "t.users:3: user 'b' given twice (first on line 2)");
    /* The first error in file order, whatever the names sort as. */
    parse_err("z:1\na:1\nz:2\na:2\n", "t.users:3: user 'z' given twice (first on line 1)");
    parse_err("a:1\nkeep:other\n", "t.users:2: user 'keep' was given before this file");
    parse_err("\x01\x7f'\\:1\n\x01\x7f'\\:2\n",
              "t.users:2: user '\\x01\\x7f\\x27\\x5c' given twice (first on line 1)");
}

T(duplicate_quoted_long, "a long name is cut in the message")
{
    char text[700], want[300];
    memset(text, 'n', 100);
    strcpy(text + 100, ":1\n");
    memset(text + 103, 'n', 100);
    strcpy(text + 203, ":2\n");
    memset(want, 0, sizeof want);
    strcpy(want, "t.users:2: user '");
    memset(want + strlen(want), 'n', 64);
    strcat(want, "...' given twice (first on line 1)");
    parse_err(text, want);
}

T(syntax_before_duplicates, "duplicates are looked for once every line has parsed")
{
    parse_err("a:1\na:2\nbad\n", "t.users:3: no ':' in the line");
}

T(err_buffer, "a short or absent error buffer is safe")
{
    struct users u = {0};
    char small[8];
    cr_assert_eq(users_parse("x", 1, "t.users", &u, small, sizeof small), -EINVAL);
    cr_assert_str_eq(small, "t.users");
    cr_assert_eq(users_parse("x", 1, "t.users", &u, NULL, 0), -EINVAL);
    cr_assert_eq(users_parse("x", 1, NULL, &u, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "(users):1: no ':' in the line");
    cr_assert_eq(u.n, 0);
    users_free(&u);
}

/* ------------------------------------------------------------ files */

/* A file of the text, in a fresh directory; its path in path. */
static void write_file(char *path, size_t size, const char *text)
{
    char dir[] = "/tmp/socks5d-users-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, size, "%s/users", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    cr_assert_eq(fclose(f), 0);
}

static void remove_file(const char *path)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(dir), 0);
}

T(load, "users_load reads the file, and names it by its path in messages")
{
    char path[256], want[512];
    write_file(path, sizeof path, "# x\nalice:one\nbob:two\n");
    struct users u = {0};
    cr_assert_eq(users_load(path, &u, err, sizeof err), 0, "%s", err);
    cr_assert_eq(u.n, 2);
    cr_assert(users_check(&u, "bob", "two"));
    users_free(&u);
    remove_file(path);

    write_file(path, sizeof path, "alice:one\nbob\n");
    cr_assert_eq(users_load(path, &u, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s:2: no ':' in the line", path);
    cr_assert_str_eq(err, want);
    cr_assert_eq(u.n, 0);
    remove_file(path);
}

T(load_errors, "a missing file, a directory: -errno and \"PATH: strerror\"")
{
    struct users u = {0};
    cr_assert_eq(users_load("/nonexistent/socks5d.users", &u, err, sizeof err), -ENOENT);
    cr_assert_str_eq(err, "/nonexistent/socks5d.users: No such file or directory");
    cr_assert_eq(users_load("/", &u, err, sizeof err), -EISDIR);
    cr_assert_str_eq(err, "/: Is a directory");
    cr_assert_eq(u.n, 0);
}

/* ------------------------------------------------------------ -u / -P */

T(add, "users_add: checked lengths, -EEXIST for a user already there, any order")
{
    struct users u = {0};
    char big[300];
    memset(big, 'x', 256);
    big[256] = '\0';
    cr_assert_eq(users_add(&u, "", "p"), -EINVAL);
    cr_assert_eq(users_add(&u, "u", ""), -EINVAL);
    cr_assert_eq(users_add(&u, NULL, "p"), -EINVAL);
    cr_assert_eq(users_add(&u, "u", NULL), -EINVAL);
    cr_assert_eq(users_add(NULL, "u", "p"), -EINVAL);
    cr_assert_eq(users_add(&u, big, "p"), -EINVAL);
    cr_assert_eq(users_add(&u, "u", big), -EINVAL);
    big[255] = '\0';
    cr_assert_eq(users_add(&u, big, big), 0);
    cr_assert_eq(users_add(&u, "m", "1"), 0);
    cr_assert_eq(users_add(&u, "a", "2"), 0);
    cr_assert_eq(users_add(&u, "z", "3"), 0);
    cr_assert_eq(users_add(&u, "m", "4"), -EEXIST);
    cr_assert_eq(u.n, 4);
    cr_assert(users_check(&u, big, big));
    cr_assert(users_check(&u, "m", "1"));
    cr_assert(!users_check(&u, "m", "4"));
    cr_assert(users_check(&u, "a", "2"));
    cr_assert(users_check(&u, "z", "3"));
    /* A user with a ':' can come from -u (the file cannot say it). */
    cr_assert_eq(users_add(&u, "a:b", "c"), 0);
    cr_assert(users_check(&u, "a:b", "c"));
    /* The file then may not give one of them again. */
    memset(err, 0, sizeof err);
    cr_assert_eq(users_parse("q:1\nm:9\n", 8, "t.users", &u, err, sizeof err), -EINVAL);
    cr_assert_str_eq(err, "t.users:2: user 'm' was given before this file");
    cr_assert_eq(u.n, 5);
    users_free(&u);
}

T(check_edges, "NULL arguments, no users, an overlong password: never a match")
{
    struct users u = {0};
    cr_assert(!users_check(&u, "a", "b"));
    cr_assert(!users_check(NULL, "a", "b"));
    cr_assert_eq(users_add(&u, "a", "b"), 0);
    cr_assert(!users_check(&u, NULL, "b"));
    cr_assert(!users_check(&u, "a", NULL));
    char big[400];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert(!users_check(&u, "a", big));
    cr_assert(!users_check(&u, big, "b"));
    users_free(&u);
}

T(free_twice, "users_free empties, and may be called again")
{
    struct users u = {0};
    users_free(&u);
    cr_assert_eq(users_add(&u, "a", "b"), 0);
    users_free(&u);
    cr_assert_null(u.v);
    cr_assert_eq(u.n, 0);
    cr_assert_eq(u.cap, 0);
    users_free(&u);
    users_free(NULL);
    cr_assert(!users_check(&u, "a", "b"));
}
