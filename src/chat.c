/* The chat channel, asynchat's async_chat (C1-C25): input split by a
 * terminator, output as a queue of byte strings, producers and a close
 * marker. */
#include "internal.h"
#include "asynchat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define MAX_IOV 64 /* byte entries sent together by a coalescing channel */

enum node_kind { NODE_BYTES, NODE_PRODUCER, NODE_CLOSE };

struct node {
    struct node *next;
    enum node_kind kind;
    const char *ptr; /* NODE_BYTES: the unsent bytes (data[] or a producer's piece) */
    size_t len;
    ac_producer *producer;
    char data[];
};

struct chat {
    /* input */
    char *in; /* leftover between reads: a terminator prefix (C10) */
    size_t in_len;
    const char *view; /* the bytes the splitting loop still has to look at */
    size_t vlen;
    size_t in_size, out_size; /* C1, C24 */
    ac_term_kind term;
    char *term_bytes;
    size_t term_len; /* BYTES: its length; COUNT: bytes remaining (C7) */
    size_t max_input, record_len;
    bool input_over; /* max_input passed: reading stays off for good */
    char *incoming;  /* C2's opt-in collector */
    size_t inc_len, inc_cap;
    /* output */
    struct node *head, *tail;
    size_t pending;
    struct ac_marks marks;
    bool coalesce; /* ac_chat_set_coalesce */
    bool in_read;  /* inside ac_chat_handle_read: coalesced pushes wait */
};

static const struct ac_layer chat_layer;

static struct chat *chat(const ac_dispatcher *d)
{
    return d->layer == &chat_layer ? ac__ext(d) : NULL;
}

ac_dispatcher *ac_chat_new(ac_map *m, const ac_handlers *h, void *user)
{
    ac_dispatcher *d = ac__dispatcher_alloc(m, h, user, &chat_layer, sizeof(struct chat));
    if (d) {
        struct chat *c = ac__ext(d);
        c->in_size = c->out_size = AC_CHAT_BUFFER_SIZE;
    }
    return d;
}

static void free_queue(struct chat *c)
{
    while (c->head) {
        struct node *n = c->head;
        c->head = n->next;
        ac_producer_free(n->producer);
        free(n);
    }
    c->tail = NULL;
    c->pending = 0;
}

/* The map releases d: queue and buffers go (after finalize, X4). */
static void chat_release(ac_dispatcher *d)
{
    struct chat *c = ac__ext(d);
    free_queue(c);
    free(c->in);
    free(c->term_bytes);
    free(c->incoming);
    c->in = c->term_bytes = c->incoming = NULL;
}

/* ----------------------------------------------------------- terminator */

static int set_term(ac_dispatcher *d, ac_term_kind kind, const void *bytes, size_t len)
{
    struct chat *c = chat(d);
    if (!c)
        return -EINVAL;
    char *copy = NULL;
    if (kind == AC_TERM_BYTES) {
        copy = malloc(len ? len : 1);
        if (!copy)
            return -ENOMEM;
        if (len)
            memcpy(copy, bytes, len);
    }
    free(c->term_bytes);
    c->term_bytes = copy;
    c->term = kind;
    c->term_len = len;
    return 0;
}

int ac_chat_set_terminator(ac_dispatcher *d, const void *term, size_t len)
{
    if (!term && len)
        return -EINVAL;
    return set_term(d, AC_TERM_BYTES, term, len);
}

int ac_chat_set_terminator_count(ac_dispatcher *d, long long count)
{
    if (count < 0)
        return -EINVAL; /* C3: rejected, terminator unchanged */
    return set_term(d, AC_TERM_COUNT, NULL, (size_t)count);
}

int ac_chat_set_terminator_none(ac_dispatcher *d) { return set_term(d, AC_TERM_NONE, NULL, 0); }

ac_term_kind ac_chat_get_terminator(const ac_dispatcher *d, const void **data, size_t *len)
{
    struct chat *c = chat(d);
    if (!c)
        return AC_TERM_UNSET;
    if (data)
        *data = c->term_bytes;
    if (len)
        *len = c->term_len;
    return c->term;
}

size_t ac_find_prefix_at_end(const void *haystack, size_t hlen, const void *needle, size_t nlen)
{
    const char *h = haystack;
    for (size_t l = nlen ? nlen - 1 : 0; l > 0; l--)
        if (l <= hlen && !memcmp(h + hlen - l, needle, l))
            return l;
    return 0;
}

/* ---------------------------------------------------------------- input */

static int collect(ac_dispatcher *d, struct chat *c, const char *p, size_t n)
{
    if (c->max_input && c->record_len + n > c->max_input) {
        c->vlen = 0; /* the bound holds whatever the handlers do next */
        c->record_len = 0;
        c->input_over = true;
        ac_set_reading(d, false);
        return AC_RAISE(d, EMSGSIZE, "max_input");
    }
    c->record_len += n;
    return AC__FN(d, collect_incoming_data)(d, p, n);
}

static int found(ac_dispatcher *d, struct chat *c)
{
    c->record_len = 0;
    return AC__FN(d, found_terminator)(d);
}

/* Take n bytes off the front of the view; they stay readable for the
 * handler that receives them. */
static const char *take(struct chat *c, size_t n)
{
    const char *p = c->view;
    c->view += n;
    c->vlen -= n;
    return p;
}

/* C6, one step on a string terminator.  Returns 1 to leave the loop. */
static int split_bytes(ac_dispatcher *d, struct chat *c)
{
    size_t L = c->vlen, m = c->term_len;
    const char *hit = memmem(c->view, L, c->term_bytes, m);
    if (hit) {
        size_t i = (size_t)(hit - c->view);
        const char *p = take(c, i + m); /* C9: the terminator is dropped */
        int rc = i ? collect(d, c, p, i) : 0;
        return rc ? rc : found(d, c);
    }
    size_t k = ac_find_prefix_at_end(c->view, L, c->term_bytes, m);
    if (k == L)
        return 1; /* all of it may be the start of the terminator */
    const char *p = take(c, L - k);
    int rc = collect(d, c, p, L - k);
    return rc ? rc : k ? 1 : 0;
}

/* C6: runs while bytes remain, re-reading the terminator every time,
 * whatever the handlers did (C11). */
static int split(ac_dispatcher *d, struct chat *c)
{
    while (c->vlen > 0) {
        int rc;
        size_t L = c->vlen, n = c->term_len;
        if (c->term == AC_TERM_UNSET)
            return AC_RAISE(d, EINVAL, "terminator unset"); /* C4 */
        if (c->term == AC_TERM_NONE || n == 0) {
            rc = collect(d, c, take(c, L), L); /* C6a */
        } else if (c->term == AC_TERM_COUNT) {
            /* C6b, C7: the piece is passed on first, then the count left
             * is stored, replacing whatever collect_incoming_data set. */
            size_t k = L < n ? L : n;
            rc = collect(d, c, take(c, k), k);
            set_term(d, AC_TERM_COUNT, NULL, n - k);
            if (rc == 0 && k == n)
                rc = found(d, c);
        } else {
            rc = split_bytes(d, c);
            if (rc == 1)
                return 0;
        }
        if (rc)
            return rc;
    }
    return 0;
}

int ac_chat_handle_read(ac_dispatcher *d)
{
    struct chat *c = chat(d);
    if (!c)
        return -EINVAL;
    /* Read behind the leftover, on the stack when it fits, so that an idle
     * channel holds no input buffer at all. */
    char stackbuf[AC_CHAT_BUFFER_SIZE + 256];
    size_t need = c->in_len + c->in_size;
    char *buf = need <= sizeof(stackbuf) ? stackbuf : malloc(need);
    if (!buf)
        return -ENOMEM;
    if (c->in_len)
        memcpy(buf, c->in, c->in_len);
    ssize_t n = ac_recv(d, buf + c->in_len, c->in_size); /* C5 */
    int rc = 0;
    if (n == -EAGAIN) {
        n = 0; /* C5: silently */
    } else if (n < 0) {
        rc = n == AC_EXIT_NOW ? (int)n : ac__route_error(d, (int)n, "recv");
        n = 0;
    }
    if (rc == 0 && (n > 0 || c->in_len)) {
        c->view = buf;
        c->vlen = c->in_len + (size_t)n;
        c->in_len = 0;
        c->in_read = c->coalesce;
        rc = split(d, c);
        c->in_read = false;
        if (rc == 0 && c->coalesce && c->head)
            rc = ac_initiate_send(d); /* what the records' handlers pushed */
        /* Keep what is left: a terminator prefix, or all of it (C4). */
        if (c->vlen) {
            char *keep = realloc(c->in, c->vlen);
            if (keep) {
                memcpy(keep, c->view, c->vlen);
                c->in = keep;
                c->in_len = c->vlen;
            } else if (!rc) {
                rc = -ENOMEM;
            }
        }
        c->vlen = 0;
    }
    if (buf != stackbuf)
        free(buf);
    return rc;
}

int ac_chat_handle_close(ac_dispatcher *d) { return ac_close(d); /* C20 */ }

int ac_chat_collect_incoming_data(ac_dispatcher *d, const void *data, size_t len)
{
    struct chat *c = chat(d);
    if (!c)
        return -EINVAL;
    if (c->inc_len + len + 1 > c->inc_cap) {
        size_t cap = c->inc_cap ? c->inc_cap : 256;
        while (cap < c->inc_len + len + 1)
            cap *= 2;
        char *n = realloc(c->incoming, cap);
        if (!n)
            return -ENOMEM;
        c->incoming = n;
        c->inc_cap = cap;
    }
    memcpy(c->incoming + c->inc_len, data, len);
    c->inc_len += len;
    return 0;
}

char *ac_chat_get_data(ac_dispatcher *d, size_t *len)
{
    struct chat *c = chat(d);
    size_t n = c ? c->inc_len : 0;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    if (n)
        memcpy(out, c->incoming, n);
    out[n] = '\0';
    if (c)
        c->inc_len = 0;
    if (len)
        *len = n;
    return out;
}

/* --------------------------------------------------------------- output */

static bool chat_writable(ac_dispatcher *d)
{
    struct chat *c = ac__ext(d);
    return c->head || !d->connected; /* C18 */
}

static int chat_handle_write(ac_dispatcher *d) { return ac_initiate_send(d); /* C19 */ }

/* Backpressure lets reading go again, unless max_input stopped it. */
static void resume_reading(ac_dispatcher *d, struct chat *c)
{
    if (!c->input_over)
        ac_set_reading(d, true);
}

/* A chat channel reads only while its queue is below the high mark. */
static void backpressure(ac_dispatcher *d, bool above)
{
    if (above)
        ac_set_reading(d, false);
    else
        resume_reading(d, ac__ext(d));
}

/* After the bytes pending changed: the water marks (W3) and backpressure.
 * (Interest follows the queue itself: enqueue, pop and discard refresh it.) */
static int changed(ac_dispatcher *d, struct chat *c)
{
    return ac__marks_changed(d, &c->marks, c->pending, backpressure);
}

/* Every change to the queue goes through enqueue, pop or free_queue
 * followed by ac__touch: C18 makes an empty queue "not writable", and a
 * channel left write-interested with nothing to send gets an empty write
 * event every iteration, which spins the loop (X7; issue 8 item 1). */
static void enqueue(ac_dispatcher *d, struct chat *c, struct node *n)
{
    n->next = NULL;
    if (c->tail)
        c->tail->next = n;
    else
        c->head = n;
    c->tail = n;
    if (n->kind == NODE_BYTES)
        c->pending += n->len;
    ac__touch(d);
}

static struct node *bytes_node(const char *p, size_t len)
{
    struct node *n = malloc(sizeof(*n) + len);
    if (!n)
        return NULL;
    *n = (struct node){.kind = NODE_BYTES, .ptr = n->data, .len = len};
    if (len)
        memcpy(n->data, p, len);
    return n;
}

static void pop(ac_dispatcher *d, struct chat *c)
{
    struct node *n = c->head;
    c->head = n->next;
    if (!c->head)
        c->tail = NULL;
    ac_producer_free(n->producer);
    free(n);
    ac__touch(d);
}

/* The head's run of byte entries (the head is one), up to out_size bytes,
 * in one gathered send (ac_chat_set_coalesce).  Empty entries in it are dropped. */
static int send_run(ac_dispatcher *d, struct chat *c)
{
    struct iovec iov[MAX_IOV];
    int n = 0;
    size_t total = 0;
    struct node *k = c->head;
    do {
        size_t len = k->len < c->out_size - total ? k->len : c->out_size - total;
        iov[n++] = (struct iovec){(void *)k->ptr, len};
        total += len;
        k = k->next;
    } while (k && k->kind == NODE_BYTES && n < MAX_IOV && total < c->out_size);
    ssize_t sent = total ? ac__sendv(d, iov, n) : 0; /* only empty entries: no call */
    if (sent < 0)
        return sent == AC_EXIT_NOW ? (int)sent : ac__route_error(d, (int)sent, "send");
    if (sent == 0 && total > 0)
        return 0; /* would block, or disconnected (handle_close ran) */
    c->pending -= (size_t)sent;
    size_t left = (size_t)sent;
    while (c->head && c->head->kind == NODE_BYTES && left >= c->head->len) {
        left -= c->head->len;
        pop(d, c);
    }
    if (left) { /* the rest of a partly sent entry stays at the head */
        c->head->ptr += left;
        c->head->len -= left;
    }
    return changed(d, c);
}

/* ac_initiate_send for this layer.  C16: at most one send per call;
 * producers are asked only at the head. */
static int chat_initiate_send(ac_dispatcher *d)
{
    struct chat *c = ac__ext(d);
    while (c->head && d->connected) {
        struct node *h = c->head;
        if (h->kind == NODE_CLOSE) {
            pop(d, c);
            return AC__FN(d, handle_close)(d);
        }
        if (h->kind == NODE_PRODUCER) {
            const void *data;
            ssize_t n = ac_producer_more(h->producer, &data);
            if (n < 0)
                return AC_RAISE(d, (int)n, "more");
            if (n == 0) {
                pop(d, c); /* C16.4: finished, even if the queue is now empty */
                continue;
            }
            struct node *piece = malloc(sizeof(*piece));
            if (!piece)
                return -ENOMEM;
            *piece = (struct node){.next = h, .kind = NODE_BYTES, .ptr = data, .len = (size_t)n};
            c->head = piece;
            c->pending += (size_t)n;
            continue;
        }
        if (c->coalesce)
            return send_run(d, c);
        if (h->len == 0) {
            pop(d, c); /* C16.2 */
            return changed(d, c);
        }
        size_t chunk = h->len < c->out_size ? h->len : c->out_size;
        ssize_t sent = ac_send(d, h->ptr, chunk);
        if (sent < 0)
            return sent == AC_EXIT_NOW ? (int)sent : ac__route_error(d, (int)sent, "send");
        if (sent == 0)
            return 0; /* would block, or disconnected (handle_close ran) */
        c->pending -= (size_t)sent;
        if ((size_t)sent < h->len) {
            h->ptr += sent;
            h->len -= (size_t)sent;
        } else {
            pop(d, c);
        }
        return changed(d, c);
    }
    return 0;
}

int ac_chat_push(ac_dispatcher *d, const void *data, size_t len)
{
    struct chat *c = chat(d);
    if (!c || (!data && len))
        return -EINVAL;
    const char *p = data;
    size_t off = 0;
    do { /* C13: slices of out_size; an empty push is one empty entry */
        size_t n = len - off < c->out_size ? len - off : c->out_size;
        struct node *node = bytes_node(p + off, n);
        if (!node)
            return -ENOMEM;
        enqueue(d, c, node);
        off += n;
    } while (off < len);
    int rc = changed(d, c);
    return rc || c->in_read ? rc : ac_initiate_send(d);
}

int ac_chat_push_with_producer(ac_dispatcher *d, ac_producer *p)
{
    struct chat *c = chat(d);
    struct node *n = c && p ? malloc(sizeof(*n)) : NULL;
    if (!n) {
        ac_producer_free(p);
        return c && p ? -ENOMEM : -EINVAL;
    }
    *n = (struct node){.kind = NODE_PRODUCER, .producer = p};
    enqueue(d, c, n); /* C14: one entry, unsplit */
    return c->in_read ? 0 : ac_initiate_send(d);
}

/* ac_close_when_done for this layer. */
static int chat_close_when_done(ac_dispatcher *d)
{
    struct chat *c = ac__ext(d);
    struct node *n = malloc(sizeof(*n));
    if (!n)
        return -ENOMEM;
    *n = (struct node){.kind = NODE_CLOSE};
    enqueue(d, c, n); /* C15: no initiate_send here */
    return 0;
}

void ac_chat_discard_buffers(ac_dispatcher *d)
{
    struct chat *c = chat(d);
    if (!c)
        return;
    c->vlen = 0; /* C21: also ends a splitting loop in progress */
    c->in_len = 0;
    c->inc_len = 0;
    c->record_len = 0;
    free_queue(c);
    ac__touch(d);
    changed(d, c);
}

int ac_chat_set_buffer_sizes(ac_dispatcher *d, size_t in_size, size_t out_size)
{
    struct chat *c = chat(d);
    if (!c)
        return -EINVAL;
    if (in_size)
        c->in_size = in_size;
    if (out_size)
        c->out_size = out_size;
    return 0;
}

size_t ac_chat_pending(const ac_dispatcher *d)
{
    struct chat *c = chat(d);
    return c ? c->pending : 0;
}

int ac_chat_set_max_input(ac_dispatcher *d, size_t max)
{
    struct chat *c = chat(d);
    if (!c)
        return -EINVAL;
    c->max_input = max;
    return 0;
}

int ac_chat_set_coalesce(ac_dispatcher *d, bool on)
{
    struct chat *c = chat(d);
    if (!c)
        return -EINVAL;
    c->coalesce = on;
    return 0;
}

int ac_chat_set_watermarks(ac_dispatcher *d, size_t low, size_t high)
{
    struct chat *c = chat(d);
    if (!c)
        return -EINVAL;
    bool was_above = c->marks.above;
    int rc = ac__marks_set(&c->marks, low, high);
    if (rc == 0 && was_above)
        resume_reading(d, c); /* the new marks start from "not above" */
    return rc;
}

/* ac_detach refuses while output is queued (bytes, producers, the close
 * marker) or input is held back (a terminator prefix, C10; the opt-in
 * collector's bytes). */
static bool chat_holds_bytes(const ac_dispatcher *d)
{
    const struct chat *c = ac__ext(d);
    return c->head || c->in_len || c->inc_len;
}

static const struct ac_layer chat_layer = {
    .h =
        {
            .name = "asynchat.async_chat",
            .writable = chat_writable,
            .handle_read = ac_chat_handle_read,
            .handle_write = chat_handle_write,
            .handle_close = ac_chat_handle_close,
        },
    .release = chat_release,
    .initiate_send = chat_initiate_send,
    .close_when_done = chat_close_when_done,
    .holds_bytes = chat_holds_bytes,
};
