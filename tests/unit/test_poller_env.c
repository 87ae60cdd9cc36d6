/* Unit: an AC_POLLER value that names no poller (X6, L3; issue 8 item 19).
 * ac_map_new fails with -EINVAL and the log hook receives one line that
 * names the variable, so that a program can show it as its one startup
 * error; the library itself prints nothing. */
#include "ac_testkit.h"

#include <criterion/redirect.h>

static void check_bogus(const char *value, const char *want_log)
{
    cr_assert_eq(setenv("AC_POLLER", value, 1), 0);
    ac_set_log_hook(tk_log_hook, NULL);
    ac_map *m = NULL;
    cr_assert_eq(ac_map_new(&m, AC_POLLER_DEFAULT), -EINVAL);
    cr_assert_null(m);
    cr_assert_str_eq(tk_logbuf, want_log);
    cr_assert_eq(tk_log_lines, 1);
}

Test(poller_env, bogus_value_names_the_variable, .timeout = 5,
     .description = "X6 L3, issue 8 item 19: AC_POLLER=bogus -> -EINVAL and one error line "
                    "naming the variable and the valid values")
{
    check_bogus("bogus", "error: AC_POLLER=bogus is not epoll, poll or select\n");
}

Test(poller_env, case_matters, .timeout = 5,
     .description = "X6, issue 8 item 19: the names are lower case; EPOLL is refused the same way")
{
    check_bogus("EPOLL", "error: AC_POLLER=EPOLL is not epoll, poll or select\n");
}

Test(poller_env, set_poller_default_reports_it_too, .timeout = 5,
     .description = "L3, issue 8 item 19: ac_map_set_poller(AC_POLLER_DEFAULT) reads the "
                    "variable the same way; the old poller stays")
{
    ac_set_log_hook(tk_log_hook, NULL);
    ac_map *m = NULL;
    cr_assert_eq(ac_map_new(&m, AC_POLLER_POLL), 0);
    cr_assert_eq(setenv("AC_POLLER", "kqueue", 1), 0);
    cr_assert_eq(ac_map_set_poller(m, AC_POLLER_DEFAULT), -EINVAL);
    cr_assert_str_eq(ac_map_poller_name(m), "poll");
    cr_assert_str_eq(tk_logbuf, "error: AC_POLLER=kqueue is not epoll, poll or select\n");
    cr_assert_eq(ac_map_free(m), 0);
}

Test(poller_env, valid_and_empty_values_log_nothing, .timeout = 5,
     .description = "L3 L20: epoll, poll, select and the empty value (epoll) are accepted "
                    "silently")
{
    static const char *const values[][2] = {
        {"epoll", "epoll"}, {"poll", "poll"}, {"select", "select"}, {"", "epoll"}};
    ac_set_log_hook(tk_log_hook, NULL);
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        cr_assert_eq(setenv("AC_POLLER", values[i][0], 1), 0);
        ac_map *m = NULL;
        cr_assert_eq(ac_map_new(&m, AC_POLLER_DEFAULT), 0);
        cr_assert_str_eq(ac_map_poller_name(m), values[i][1]);
        cr_assert_eq(ac_map_free(m), 0);
    }
    cr_assert_str_empty(tk_logbuf);
}

Test(poller_env, default_hook_writes_stderr_only, .timeout = 5,
     .description = "X15 D22, issue 8 item 19: with the default hook the line goes to stderr "
                    "as 'error: ...'; nothing on stdout",
     .init = cr_redirect_stderr)
{
    cr_assert_eq(setenv("AC_POLLER", "bogus", 1), 0);
    ac_set_log_hook(NULL, NULL);
    ac_map *m = NULL;
    cr_assert_eq(ac_map_new(&m, AC_POLLER_DEFAULT), -EINVAL);
    fflush(stderr);
    cr_assert_stderr_eq_str("error: AC_POLLER=bogus is not epoll, poll or select\n");
}
