/* The buffered sender, asyncore's dispatcher_with_send (S14-S19), with a
 * chain of blocks sent by one gathered send per attempt through the
 * dispatcher's transport (X16), water marks and close-when-done (W3, W12). */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define BLOCK_SIZE 16384
#define MAX_IOV 64

struct block {
    struct block *next;
    size_t start, end, cap;
    char data[];
};

struct sendbuf {
    struct block *head, *tail;
    size_t pending;
    size_t chunk;
    struct ac_marks marks;
    bool close_when_done;
    bool close_called; /* close_when_done's handle_close has run */
};

static const struct ac_layer buffered_layer;

static struct sendbuf *sb(const ac_dispatcher *d)
{
    return d->layer == &buffered_layer ? d->ext : NULL;
}

/* S18: writable while not connected, or with something to send (or a
 * close waiting for the buffer to drain).  Once that close has run, a
 * handle_close that kept the channel open must not be asked again at every
 * write event (issue 8 item 1). */
static bool buffered_writable(ac_dispatcher *d)
{
    struct sendbuf *b = d->ext;
    return !d->connected || b->pending > 0 || (b->close_when_done && !b->close_called);
}

static int buffered_handle_write(ac_dispatcher *d) { return ac_initiate_send(d); /* S17 */ }

ac_dispatcher *ac_buffered_new(ac_map *m, const ac_handlers *h, void *user)
{
    ac_dispatcher *d = ac__dispatcher_alloc(m, h, user, &buffered_layer, sizeof(struct sendbuf));
    if (d)
        sb(d)->chunk = AC_SEND_CHUNK;
    return d;
}

/* The map releases d: the blocks go (after finalize, X4). */
static void buffered_release(ac_dispatcher *d)
{
    struct sendbuf *b = d->ext;
    while (b->head) {
        struct block *k = b->head;
        b->head = k->next;
        free(k);
    }
    b->tail = NULL;
    b->pending = 0;
}

static int append(struct sendbuf *b, const char *p, size_t len)
{
    while (len) {
        struct block *t = b->tail;
        if (!t || t->end == t->cap) {
            size_t cap = len > BLOCK_SIZE ? len : BLOCK_SIZE;
            t = malloc(sizeof(*t) + cap);
            if (!t)
                return -ENOMEM;
            *t = (struct block){.cap = cap};
            if (b->tail)
                b->tail->next = t;
            else
                b->head = t;
            b->tail = t;
        }
        size_t n = t->cap - t->end < len ? t->cap - t->end : len;
        memcpy(t->data + t->end, p, n);
        t->end += n;
        b->pending += n;
        p += n;
        len -= n;
    }
    return 0;
}

static void consume(struct sendbuf *b, size_t n)
{
    b->pending -= n;
    while (n) {
        struct block *k = b->head;
        size_t have = k->end - k->start;
        if (n < have) {
            k->start += n;
            return;
        }
        n -= have;
        b->head = k->next;
        if (!b->head)
            b->tail = NULL;
        free(k);
    }
}

/* After the buffer changed: interest (X7), then the water marks (W3). */
static int changed(ac_dispatcher *d, struct sendbuf *b)
{
    ac__touch(d);
    return ac__marks_changed(d, &b->marks, b->pending, NULL);
}

/* ac_initiate_send for this layer. */
static int buffered_initiate_send(ac_dispatcher *d)
{
    struct sendbuf *b = d->ext;
    /* S16: one send of at most `chunk` bytes from the front, even when the
     * buffer is empty. */
    struct iovec iov[MAX_IOV];
    int cnt = 0;
    size_t total = 0;
    for (struct block *k = b->head; k && cnt < MAX_IOV && total < b->chunk; k = k->next) {
        size_t n = k->end - k->start;
        if (n > b->chunk - total)
            n = b->chunk - total;
        iov[cnt++] = (struct iovec){k->data + k->start, n};
        total += n;
    }
    if (!cnt)
        iov[cnt++] = (struct iovec){NULL, 0};
    ssize_t sent = ac__sendv(d, iov, cnt);
    if (sent < 0)
        return (int)sent;
    if (d->closed)
        return 0;
    consume(b, (size_t)sent);
    int rc = changed(d, b);
    if (rc == 0 && b->close_when_done && !b->close_called && b->pending == 0) {
        b->close_called = true;
        ac__touch(d);
        rc = AC__FN(d, handle_close)(d);
    }
    return rc;
}

int ac_buffered_send(ac_dispatcher *d, const void *data, size_t len)
{
    struct sendbuf *b = sb(d);
    if (!b)
        return -EINVAL;
    if (b->close_when_done)
        return -EPIPE;
    if (d->debug)
        ac_log_infof(d, "info", "sending %zu bytes: '%.*s'", len, len > 64 ? 64 : (int)len,
                     (const char *)data); /* S15 */
    if (b->pending == 0 && len && !d->closed) {
        /* Fast path, same effect as S15's append then S16's one send: the
         * buffer is empty, so its front is `data` itself. */
        size_t first = len < b->chunk ? len : b->chunk;
        ssize_t sent = ac_send(d, data, first);
        size_t done = sent > 0 ? (size_t)sent : 0;
        if (append(b, (const char *)data + done, len - done) < 0)
            return -ENOMEM;
        int rc = changed(d, b);
        return sent < 0 ? (int)sent : rc; /* S16: a propagated failure keeps the data */
    }
    if (append(b, data, len) < 0)
        return -ENOMEM;
    int rc = changed(d, b);
    return rc ? rc : ac_initiate_send(d);
}

size_t ac_buffered_pending(const ac_dispatcher *d)
{
    struct sendbuf *b = sb(d);
    return b ? b->pending : 0;
}

int ac_buffered_set_chunk(ac_dispatcher *d, size_t chunk)
{
    struct sendbuf *b = sb(d);
    if (!b || chunk == 0)
        return -EINVAL;
    b->chunk = chunk;
    return 0;
}

int ac_buffered_set_watermarks(ac_dispatcher *d, size_t low, size_t high)
{
    struct sendbuf *b = sb(d);
    return b ? ac__marks_set(&b->marks, low, high) : -EINVAL;
}

/* ac_close_when_done for this layer (W12). */
static int buffered_close_when_done(ac_dispatcher *d)
{
    struct sendbuf *b = d->ext;
    b->close_when_done = true;
    ac__touch(d);
    return 0;
}

static const struct ac_layer buffered_layer = {
    .h =
        {
            .name = "asyncore.dispatcher_with_send",
            .writable = buffered_writable,
            .handle_write = buffered_handle_write,
        },
    .release = buffered_release,
    .initiate_send = buffered_initiate_send,
    .close_when_done = buffered_close_when_done,
};
