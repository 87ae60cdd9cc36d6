/* Linked into the Criterion suites under the sanitizers (tests/CMakeLists.txt).
 *
 * Criterion runs every test in a worker process of its own (argv[0]
 * "boxfort-worker"); the process that starts them, the runner, runs none
 * of our code.  Criterion 2.4.1's runner leaks a few bytes of its own when
 * it runs tests in parallel (--jobs > 1), and LeakSanitizer's report at its
 * exit would fail the CTest test.  LeakSanitizer asks this function at exit
 * whether to check: everywhere but the runner, so every test process stays
 * checked while the tests run side by side (issue 8 item 17). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

int __lsan_is_turned_off(void);

int __lsan_is_turned_off(void)
{
    return strcmp(program_invocation_short_name, "boxfort-worker") != 0;
}
