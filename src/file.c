/* file_wrapper / file_dispatcher (F1-F9): a dispatcher over a duplicate of
 * a descriptor, reading and writing with read(2) and writev(2) through the
 * file transport (F8, transport.c). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static const struct ac_layer file_layer = {
    .h = {.name = "asyncore.file_dispatcher"},
};

int ac_set_file(ac_dispatcher *d, int fd)
{
    if (d->closed || d->fd >= 0)
        return -EBADF;
    struct ac_rare *r = ac__rare(d);
    if (!r)
        return -ENOMEM;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* F1 */
    if (dup < 0)
        return AC_RAISE(d, errno, "dup");
    r->tp = &ac__file_transport;
    d->has_tp = true;
    if (d->layer == &ac__base_layer)
        d->layer = &file_layer;
    int rc = ac_set_socket(d, dup);
    if (rc < 0) {
        close(dup);
        d->fd = -1;
        d->has_tp = false;
    }
    return rc;
}

int ac_file_dispatcher_new(ac_dispatcher **out, ac_map *m, const ac_handlers *h, void *user, int fd)
{
    ac_dispatcher *d = ac_dispatcher_new(m, h, user);
    if (!d)
        return -ENOMEM;
    d->connected = true; /* F7 */
    int rc = ac_set_file(d, fd);
    if (rc == 0) {
        /* F7: the original is made non-blocking, and with it the duplicate
         * and everyone sharing the open file description (W17). */
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            rc = AC_RAISE(d, errno, "fcntl");
    }
    if (rc < 0) {
        ac_set_handlers(d, NULL); /* a call that fails never calls back: no finalize */
        ac_close(d);
        return rc;
    }
    ac__touch(d);
    *out = d;
    return 0;
}
