/* Private declarations shared by the resolver's files (resolver.c, the
 * lookups; connect.c, connect by name).  The resolver is a library above
 * the core: it uses asyncore.h's public API only (tests/checks/layers.sh). */
#ifndef AC_RESOLVER_PRIVATE_H
#define AC_RESOLVER_PRIVATE_H

#include "asyncore_resolver.h"

/* Something a resolver must end when it is freed (a connect by name in
 * flight): ac_resolver_free calls cancel for each, without callbacks. */
struct ac__resolver_link {
    struct ac__resolver_link *prev, *next;
    void (*cancel)(struct ac__resolver_link *l);
};

ac_map *ac__resolver_map(const ac_resolver *r);
bool ac__resolver_is_freed(const ac_resolver *r);
void ac__resolver_link(ac_resolver *r, struct ac__resolver_link *l);
void ac__resolver_unlink(ac_resolver *r, struct ac__resolver_link *l);

/* Monotonic seconds. */
double ac__resolver_clock(void);

#endif
