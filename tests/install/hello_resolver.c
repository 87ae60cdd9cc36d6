/* The smallest user of an installed libasyncore-resolver: resolve a
 * numeric address through the map's loop, print the version.  Built by
 * run.sh through pkg-config (asyncore-resolver) and find_package. */
#include <asyncore_resolver.h>

#include <arpa/inet.h>
#include <stdio.h>

static int status = 1;

static void done(void *arg, int st, const ac_address *addrs, size_t n)
{
    (void)arg;
    if (st == 0 && n == 1 && ntohs(addrs[0].u.in.sin_port) == 7)
        status = 0;
}

int main(void)
{
    ac_map *m = NULL;
    ac_resolver *r = NULL;
    if (ac_map_new(&m, AC_POLLER_DEFAULT) < 0 || ac_resolver_new(&r, m, NULL) < 0)
        return 1;
    /* A channel keeps the loop running (it returns when the map is empty). */
    ac_dispatcher *keep = ac_dispatcher_new(m, NULL, NULL);
    if (!keep || ac_create_socket(keep, AF_INET, SOCK_DGRAM) < 0)
        return 1;
    ac_set_writing(keep, false);
    if (ac_resolve(NULL, r, "127.0.0.1", 7, AF_INET, done, NULL) < 0)
        return 1;
    for (int i = 0; i < 10 && status; i++)
        ac_poll(m, 0.01);
    ac_resolver_free(r);
    ac_close_all(m, true);
    ac_map_free(m);
    if (status == 0)
        printf("asyncore %s ok\n", AC_VERSION_STRING);
    return status;
}
