/* ac_detach and the close hook (asyncore.h, beyond asyncore): a detached
 * dispatcher ends as if closed (out of the map and the poller, finalize
 * once, no handler) while its descriptor stays open and becomes the
 * caller's; a layer holding bytes refuses (-EBUSY) so nothing is dropped.
 * The close hook runs once, right after the descriptor is gone, whoever
 * closes the dispatcher (ac_close, ac_close_all, a default handler,
 * ac_detach, ac_map_free). */
#include "ac_testkit.h"

#include <dirent.h>

/* Open descriptors of the process, to prove nothing leaked or closed. */
static int open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    cr_assert_not_null(dir);
    int n = 0;
    while (readdir(dir))
        n++;
    closedir(dir);
    return n;
}

static int hook_calls;
static int hook_saw_fd = 99;
static bool hook_saw_closed;
static void *hook_saw_arg;

static void hook(ac_dispatcher *d, void *arg)
{
    hook_calls++;
    hook_saw_fd = ac_fd(d);
    hook_saw_closed = ac_is_closed(d);
    hook_saw_arg = arg;
    tk_tr("%s:hook", tk_name(d));
}

static int tr_close(ac_dispatcher *d)
{
    tk_tr("%s:close", tk_name(d));
    return ac_close(d);
}

static const ac_handlers plain = {
    .name = "plain", .handle_close = tr_close, .finalize = tk_finalize};

Test(detach, returns_the_descriptor_open, .timeout = 10,
     .description = "ac_detach: out of the map, closed, fd still open and working")
{
    tk_fin_in_trace = true;
    int before = open_fds();
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new(m, &plain, "a");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert_eq(ac_map_count(m), 1);

    int fd = ac_detach(d);
    cr_assert_eq(fd, sv[0]);
    cr_assert(ac_is_closed(d));
    cr_assert_not(ac_is_connected(d));
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_null(ac_map_get(m, fd));
    cr_assert(tk_fd_open(fd));
    cr_assert(tk_nonblocking(fd), "a socket of the library stays non-blocking");
    /* Closed: a second detach or a close changes nothing. */
    cr_assert_eq(ac_detach(d), -EINVAL);
    cr_assert_eq(ac_close(d), 0);
    cr_assert(tk_fd_open(fd));

    /* Bytes written to the peer now reach the caller's descriptor. */
    cr_assert_eq(write(sv[1], "hi", 2), 2);
    char buf[4];
    cr_assert(tk_wait_fd(fd, POLLIN, 1000));
    cr_assert_eq(read(fd, buf, sizeof(buf)), 2);
    cr_assert_eq(memcmp(buf, "hi", 2), 0);

    /* The loop finalizes d once, and runs no handler for it. */
    ac_dispatcher *keep = tk_new(m, &plain, "keep");
    int kp[2];
    tk_socketpair(SOCK_STREAM, kp);
    cr_assert_eq(ac_attach(keep, kp[0]), 0);
    ac_set_writing(keep, false);
    cr_assert_eq(ac_poll(m, 0.01), 0);
    cr_assert_str_eq(tk_trace, "a:finalize");
    close(fd);
    close(sv[1]);
    close(kp[1]);
    tk_finish(m);
    cr_assert_eq(open_fds(), before);
}

Test(detach, errors, .timeout = 10, .description = "ac_detach: -EBADF without fd, -EINVAL closed")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &plain, "a");
    cr_assert_eq(ac_detach(d), -EBADF);
    cr_assert_not(ac_is_closed(d), "a failed detach changes nothing");
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_detach(d), -EINVAL);
    tk_finish(m);
}

Test(detach, buffered_waits_for_its_bytes, .timeout = 10,
     .description = "ac_detach: -EBUSY while a buffered dispatcher holds bytes, then works")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new_buffered(m, &plain, "b");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert_eq(ac_buffered_set_chunk(d, 1), 0); /* one byte per send: 9 stay queued */
    cr_assert_eq(ac_buffered_send(d, "0123456789", 10), 0);
    cr_assert_eq(ac_buffered_pending(d), 9);
    cr_assert_eq(ac_detach(d), -EBUSY);
    cr_assert_not(ac_is_closed(d));
    cr_assert_eq(ac_map_count(m), 1);
    for (int i = 0; i < 100 && ac_buffered_pending(d); i++)
        cr_assert_eq(ac_poll(m, 0.01), 0);
    cr_assert_eq(ac_buffered_pending(d), 0);
    int fd = ac_detach(d);
    cr_assert_eq(fd, sv[0]);
    char buf[16];
    cr_assert_eq(read(sv[1], buf, sizeof(buf)), 10, "every byte was sent");
    cr_assert_eq(memcmp(buf, "0123456789", 10), 0);
    close(fd);
    close(sv[1]);
    tk_finish(m);
}

Test(detach, chat_with_queued_output_refuses, .timeout = 10,
     .description = "ac_detach: -EBUSY while a chat channel holds output")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new_chat(m, &plain, "c");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert_eq(ac_chat_push(d, "queued", 6), 0);
    if (ac_chat_pending(d) > 0)
        cr_assert_eq(ac_detach(d), -EBUSY);
    for (int i = 0; i < 100 && ac_chat_pending(d); i++)
        cr_assert_eq(ac_poll(m, 0.01), 0);
    cr_assert_eq(ac_detach(d), sv[0]);
    close(sv[0]);
    close(sv[1]);
    tk_finish(m);
}

/* Detach inside handle_read: the remaining steps of this event find d
 * closed and run nothing that could touch the descriptor. */
static int detached_fd = -1;
static int detach_on_read(ac_dispatcher *d)
{
    tk_tr("%s:read", tk_name(d));
    detached_fd = ac_detach(d);
    return 0;
}

static const ac_handlers detacher = {.name = "detacher",
                                     .handle_read = detach_on_read,
                                     .handle_close = tr_close,
                                     .finalize = tk_finalize};

Test(detach, from_its_own_handle_read, .timeout = 10,
     .description = "ac_detach inside handle_read: the bytes stay on the descriptor")
{
    tk_fin_in_trace = true;
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new(m, &detacher, "a");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    ac_set_writing(d, false);
    cr_assert_eq(write(sv[1], "data", 4), 4);
    cr_assert_eq(ac_loop(m, 1.0, 5), 0); /* returns once the map is empty */
    cr_assert_eq(detached_fd, sv[0]);
    cr_assert_str_eq(tk_trace, "a:read a:finalize");
    char buf[8];
    cr_assert_eq(read(detached_fd, buf, sizeof(buf)), 4);
    close(detached_fd);
    close(sv[1]);
    tk_finish(m);
}

Test(detach, file_dispatcher_gives_its_duplicate, .timeout = 10,
     .description = "ac_detach on a file dispatcher: its duplicate, open")
{
    ac_map *m = tk_map();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    ac_dispatcher *d = tk_new_file(m, &plain, "f", p[0]);
    int dup_fd = ac_fd(d);
    cr_assert_eq(ac_detach(d), dup_fd);
    cr_assert(tk_fd_open(dup_fd));
    cr_assert_neq(dup_fd, p[0]);
    close(dup_fd);
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

/* --------------------------------------------------------- close hook */

Test(close_hook, runs_once_after_the_descriptor_is_closed, .timeout = 10,
     .description = "ac_set_close_hook: once, d closed and without descriptor")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new(m, &plain, "a");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    int token;
    cr_assert_eq(ac_set_close_hook(d, hook, &token), 0);
    cr_assert_eq(ac_set_close_hook(d, hook, &token), -EBUSY, "one slot");
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(hook_calls, 1);
    cr_assert_eq(hook_saw_fd, -1);
    cr_assert(hook_saw_closed);
    cr_assert_eq(hook_saw_arg, &token);
    cr_assert_not(tk_fd_open(sv[0]), "closed before the hook ran");
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(hook_calls, 1, "a second close does not run it again");
    cr_assert_eq(ac_set_close_hook(d, hook, NULL), -EBADF);
    close(sv[1]);
    tk_finish(m);
}

Test(close_hook, emptied_slot_runs_nothing, .timeout = 10)
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &plain, "a");
    cr_assert_eq(ac_set_close_hook(d, hook, NULL), 0);
    cr_assert_eq(ac_set_close_hook(d, NULL, NULL), 0);
    cr_assert_eq(ac_set_close_hook(d, NULL, NULL), 0);
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(hook_calls, 0);
    tk_finish(m);
}

Test(close_hook, runs_for_detach_close_all_and_map_free, .timeout = 10,
     .description = "the hook runs whoever ends d: ac_detach, ac_close_all, ac_map_free")
{
    ac_map *m = tk_map();
    int sv[2], tv[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, tv);
    ac_dispatcher *a = tk_new(m, &plain, "a");
    ac_dispatcher *b = tk_new(m, &plain, "b");
    ac_dispatcher *c = tk_new(m, &plain, "c"); /* no descriptor */
    cr_assert_eq(ac_attach(a, sv[0]), 0);
    cr_assert_eq(ac_attach(b, tv[0]), 0);
    cr_assert_eq(ac_set_close_hook(a, hook, NULL), 0);
    cr_assert_eq(ac_set_close_hook(b, hook, NULL), 0);
    cr_assert_eq(ac_set_close_hook(c, hook, NULL), 0);

    int fd = ac_detach(a);
    cr_assert_eq(fd, sv[0]);
    cr_assert_str_eq(tk_trace, "a:hook");
    cr_assert_eq(hook_saw_fd, -1);
    cr_assert(tk_fd_open(fd));

    cr_assert_eq(ac_close_all(m, false), 0); /* map order: c, then a and b (attached, L2) */
    cr_assert_str_eq(tk_trace, "a:hook c:hook b:hook");
    close(fd);
    close(sv[1]);
    close(tv[1]);
    tk_finish(m);

    /* ac_map_free closes what was never registered. */
    ac_map *m2 = tk_map();
    ac_dispatcher *e = ac_dispatcher_new(m2, NULL, NULL);
    cr_assert_eq(ac_set_close_hook(e, hook, NULL), 0);
    cr_assert_eq(ac_map_free(m2), 0);
    cr_assert_eq(hook_calls, 4);
}

static int reader_recv(ac_dispatcher *d)
{
    char buf[16];
    ssize_t n = ac_recv(d, buf, sizeof(buf));
    return n < 0 ? (int)n : 0;
}

static const ac_handlers eof_default = {
    .name = "eof", .handle_read = reader_recv, .finalize = tk_finalize};

Test(close_hook, runs_when_the_default_handle_close_closes, .timeout = 10,
     .description = "D18: the default handle_close closes d at EOF; the hook runs")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new(m, &eof_default, "a");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    ac_set_writing(d, false);
    cr_assert_eq(ac_set_close_hook(d, hook, NULL), 0);
    close(sv[1]); /* EOF */
    cr_assert_eq(ac_loop(m, 1.0, 5), 0);
    cr_assert_eq(hook_calls, 1);
    cr_assert_eq(hook_saw_fd, -1);
    tk_finish(m);
}

/* A hook that closes another dispatcher, as a module closing what it
 * attached to d: fine inside ac_close_all's sweep. */
static void close_other(ac_dispatcher *d, void *arg)
{
    tk_tr("%s:hook", tk_name(d));
    ac_close(arg);
}

Test(close_hook, may_close_another_dispatcher, .timeout = 10)
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = tk_new(m, &plain, "a");
    ac_dispatcher *b = tk_new(m, &plain, "b");
    cr_assert_eq(ac_attach(a, sv[0]), 0);
    cr_assert_eq(ac_attach(b, sv[1]), 0);
    cr_assert_eq(ac_set_close_hook(a, close_other, b), 0);
    cr_assert_eq(ac_set_close_hook(b, hook, NULL), 0);
    cr_assert_eq(ac_close_all(m, false), 0);
    cr_assert_str_eq(tk_trace, "a:hook b:hook");
    tk_finish(m);
}
