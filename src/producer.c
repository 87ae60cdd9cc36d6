/* Producers (C14, C22, X18): a table of two functions and a context. */
#include "internal.h"
#include "asynchat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ac_producer {
    const ac_producer_ops *ops;
    void *ctx;
};

ac_producer *ac_producer_new(const ac_producer_ops *ops, void *ctx)
{
    if (!ops || !ops->more)
        return NULL;
    ac_producer *p = malloc(sizeof(*p));
    if (p)
        *p = (ac_producer){ops, ctx};
    return p;
}

ssize_t ac_producer_more(ac_producer *p, const void **data) { return p->ops->more(p->ctx, data); }

void ac_producer_free(ac_producer *p)
{
    if (!p)
        return;
    if (p->ops->release)
        p->ops->release(p->ctx);
    free(p);
}

/* ------------------------------------------------------ simple_producer */

struct simple {
    size_t off, len, size;
    char data[];
};

static ssize_t simple_more(void *ctx, const void **data)
{
    struct simple *s = ctx;
    size_t left = s->len - s->off;
    /* C22: buffer_size pieces while more than that remains, then the rest. */
    size_t n = left > s->size ? s->size : left;
    *data = s->data + s->off;
    s->off += n;
    return (ssize_t)n;
}

static const ac_producer_ops simple_ops = {simple_more, free};

ac_producer *ac_simple_producer_new(const void *data, size_t len, size_t buffer_size)
{
    struct simple *s = malloc(sizeof(*s) + len);
    if (!s)
        return NULL;
    *s = (struct simple){0, len, buffer_size ? buffer_size : 512};
    if (len)
        memcpy(s->data, data, len);
    ac_producer *p = ac_producer_new(&simple_ops, s);
    if (!p)
        free(s);
    return p;
}

/* -------------------------------------------------------- file producer */

struct file_src {
    int fd;
    bool close_fd;
    size_t size;
    char buf[];
};

static ssize_t file_more(void *ctx, const void **data)
{
    struct file_src *f = ctx;
    for (;;) {
        ssize_t n = read(f->fd, f->buf, f->size);
        if (n >= 0) {
            *data = f->buf;
            return n;
        }
        if (errno != EINTR)
            return -errno;
    }
}

static void file_release(void *ctx)
{
    struct file_src *f = ctx;
    if (f->close_fd)
        close(f->fd);
    free(f);
}

static const ac_producer_ops file_ops = {file_more, file_release};

ac_producer *ac_file_producer_new(int fd, size_t buffer_size, bool close_fd)
{
    size_t size = buffer_size ? buffer_size : 65536;
    struct file_src *f = malloc(sizeof(*f) + size);
    if (!f)
        return NULL;
    *f = (struct file_src){fd, close_fd, size};
    ac_producer *p = ac_producer_new(&file_ops, f);
    if (!p)
        free(f);
    return p;
}
