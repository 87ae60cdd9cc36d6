/* Signals delivered inside the loop through a signalfd (Linux). */
#include "internal.h"

#include <errno.h>
#include <sys/signalfd.h>
#include <unistd.h>

int ac_signal_watch(ac_map *m, int signo, ac_signal_fn fn, void *arg)
{
    m = ac__map(m);
    if (!m || !fn || signo <= 0 || signo >= NSIG)
        return -EINVAL;
    sigset_t one, mask = m->sigmask;
    sigemptyset(&one);
    if (sigaddset(&one, signo) < 0 || sigaddset(&mask, signo) < 0)
        return -EINVAL;
    int rc = pthread_sigmask(SIG_BLOCK, &one, NULL);
    if (rc)
        return -rc;
    int fd = signalfd(m->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    m->sigfd = fd;
    m->sigmask = mask;
    m->sig[signo].fn = fn;
    m->sig[signo].arg = arg;
    if (!m->sig_registered) {
        rc = ac__internal_fd(m, fd, 0, AC__WANT_IN);
        if (rc < 0)
            return rc;
        m->sig_registered = true;
    }
    return 0;
}

int ac_signal_unwatch(ac_map *m, int signo)
{
    m = ac__map(m);
    if (!m || signo <= 0 || signo >= NSIG || !m->sig[signo].fn)
        return -EINVAL;
    sigdelset(&m->sigmask, signo);
    m->sig[signo].fn = NULL;
    if (signalfd(m->sigfd, &m->sigmask, SFD_NONBLOCK | SFD_CLOEXEC) < 0)
        return -errno;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    return -pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

void ac__signals_dispatch(ac_map *m)
{
    struct signalfd_siginfo si;
    while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        int signo = (int)si.ssi_signo;
        if (signo <= 0 || signo >= NSIG || !m->sig[signo].fn)
            continue;
        int rc = m->sig[signo].fn(m, signo, m->sig[signo].arg);
        if (rc) {
            m->exit_rc = rc;
            return;
        }
    }
}

void ac__signals_close(ac_map *m)
{
    if (m->sigfd < 0)
        return;
    if (m->sig_registered)
        ac__internal_fd(m, m->sigfd, AC__WANT_IN, 0);
    close(m->sigfd);
    m->sigfd = -1;
    m->sig_registered = false;
}
