/* The smallest user of an installed libasyncore: create a map and a
 * dispatcher, close both, print the version.  Built by run.sh through
 * pkg-config and through find_package(asyncore). */
#include <asyncore.h>

#include <stdio.h>

int main(void)
{
    static const ac_handlers handlers = {.name = "hello"};
    ac_map *m = NULL;
    if (ac_map_new(&m, AC_POLLER_DEFAULT) < 0)
        return 1;
    ac_dispatcher *d = ac_dispatcher_new(m, &handlers, NULL);
    if (d == NULL || ac_close(d) < 0 || ac_map_free(m) < 0)
        return 1;
    printf("asyncore %s ok\n", AC_VERSION_STRING);
    return 0;
}
