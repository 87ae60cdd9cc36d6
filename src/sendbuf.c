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

/* The queue, allocated at the first byte queued (or a chunk cap set) and
 * freed when it drains: an idle connection has none (issue 10). */
struct queue {
    struct block *head, *tail;
    size_t pending;
    size_t chunk; /* S16's cap of one send */
};

/* The layer's state after the dispatcher: 16 bytes. */
struct sendbuf {
    struct queue *q; /* NULL: nothing queued, the default chunk */
    struct ac_marks marks;
};

/* d->lbits */
enum {
    CLOSE_WHEN_DONE = 1,
    CLOSE_CALLED = 2, /* close_when_done's handle_close has run */
};

static const struct ac_layer buffered_layer;

static struct sendbuf *sb(const ac_dispatcher *d)
{
    return d->layer == &buffered_layer ? ac__ext(d) : NULL;
}

static size_t pending(const struct sendbuf *b) { return b->q ? b->q->pending : 0; }

static struct queue *queue(struct sendbuf *b)
{
    if (!b->q && (b->q = malloc(sizeof(*b->q))) != NULL)
        *b->q = (struct queue){.chunk = AC_SEND_CHUNK};
    return b->q;
}

/* An empty queue with the default cap goes: what it held is its default. */
static void queue_trim(struct sendbuf *b)
{
    if (b->q && !b->q->head && b->q->chunk == AC_SEND_CHUNK) {
        free(b->q);
        b->q = NULL;
    }
}

/* S18: writable while not connected, or with something to send (or a
 * close waiting for the buffer to drain).  Once that close has run, a
 * handle_close that kept the channel open must not be asked again at every
 * write event (issue 8 item 1). */
static bool buffered_writable(ac_dispatcher *d)
{
    struct sendbuf *b = ac__ext(d);
    return !d->connected || pending(b) > 0 ||
           (d->lbits & (CLOSE_WHEN_DONE | CLOSE_CALLED)) == CLOSE_WHEN_DONE;
}

static int buffered_handle_write(ac_dispatcher *d) { return ac_initiate_send(d); /* S17 */ }

ac_dispatcher *ac_buffered_new(ac_map *m, const ac_handlers *h, void *user)
{
    return ac__dispatcher_alloc(m, h, user, &buffered_layer, sizeof(struct sendbuf));
}

/* The map releases d: the blocks go (after finalize, X4). */
static void buffered_release(ac_dispatcher *d)
{
    struct sendbuf *b = ac__ext(d);
    if (!b->q)
        return;
    while (b->q->head) {
        struct block *k = b->q->head;
        b->q->head = k->next;
        free(k);
    }
    free(b->q);
    b->q = NULL;
}

static int append(struct sendbuf *sbuf, const char *p, size_t len)
{
    if (!len)
        return 0;
    struct queue *b = queue(sbuf);
    if (!b)
        return -ENOMEM;
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

static void consume(struct sendbuf *sbuf, size_t n)
{
    struct queue *b = sbuf->q;
    if (!b)
        return; /* n is 0: nothing was queued */
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
    queue_trim(sbuf);
}

/* After the buffer changed: interest (X7), then the water marks (W3). */
static int changed(ac_dispatcher *d, struct sendbuf *b)
{
    ac__touch(d);
    return ac__marks_changed(d, &b->marks, pending(b), NULL);
}

/* ac_initiate_send for this layer. */
static int buffered_initiate_send(ac_dispatcher *d)
{
    struct sendbuf *b = ac__ext(d);
    /* S16: one send of at most `chunk` bytes from the front, even when the
     * buffer is empty. */
    struct iovec iov[MAX_IOV];
    int cnt = 0;
    size_t total = 0, chunk = b->q ? b->q->chunk : AC_SEND_CHUNK;
    for (struct block *k = b->q ? b->q->head : NULL; k && cnt < MAX_IOV && total < chunk;
         k = k->next) {
        size_t n = k->end - k->start;
        if (n > chunk - total)
            n = chunk - total;
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
    if (rc == 0 && (d->lbits & (CLOSE_WHEN_DONE | CLOSE_CALLED)) == CLOSE_WHEN_DONE &&
        pending(b) == 0) {
        d->lbits |= CLOSE_CALLED;
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
    if (d->lbits & CLOSE_WHEN_DONE)
        return -EPIPE;
    if (d->debug)
        ac_log_infof(d, "info", "sending %zu bytes: '%.*s'", len, len > 64 ? 64 : (int)len,
                     (const char *)data); /* S15 */
    if (pending(b) == 0 && len && !d->closed) {
        /* Fast path, same effect as S15's append then S16's one send: the
         * buffer is empty, so its front is `data` itself. */
        size_t chunk = b->q ? b->q->chunk : AC_SEND_CHUNK;
        size_t first = len < chunk ? len : chunk;
        ssize_t sent = ac_send(d, data, first);
        if (sent == (ssize_t)len)
            return 0; /* all gone: the buffer stayed empty, nothing changed */
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
    return b ? pending(b) : 0;
}

int ac_buffered_set_chunk(ac_dispatcher *d, size_t chunk)
{
    struct sendbuf *b = sb(d);
    if (!b || chunk == 0)
        return -EINVAL;
    if (chunk != AC_SEND_CHUNK && !queue(b))
        return -ENOMEM;
    if (b->q)
        b->q->chunk = chunk;
    queue_trim(b);
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
    d->lbits |= CLOSE_WHEN_DONE;
    ac__touch(d);
    return 0;
}

/* ac_detach waits for the queue to drain (nothing is dropped silently). */
static bool buffered_holds_bytes(const ac_dispatcher *d) { return pending(sb(d)) > 0; }

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
    .holds_bytes = buffered_holds_bytes,
};
