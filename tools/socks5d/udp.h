/* socks5d's UDP relay: what a UDP ASSOCIATE request opens (RFC 1928 §7).
 *
 * An association is one UDP socket facing the client, bound to the IP the
 * client reached us on (the TCP connection's local address) and a port of
 * the kernel's choice, plus one socket per address family toward the
 * destinations, opened at the first datagram of that family.  A datagram
 * from the client carries a SOCKS header naming its destination: the
 * header is taken off and the payload sent there.  A datagram from any
 * destination gets a header naming its source and goes to the client.
 *
 * Only the associated client may use it: datagrams to the client socket
 * are taken from the TCP client's IP alone, and from one port of it: the
 * port the request named (the request's DST.PORT is where the client will
 * send from, §7), else the port of the first datagram accepted.  The
 * address the request named is not used: a client behind a NAT names the
 * private address it sees, and the datagrams come from the TCP client's.
 *
 * It never blocks and holds bounded memory: a datagram that cannot be
 * sent at once is dropped (it is UDP), and one whose destination is a name
 * waits, in a short queue, for that name's lookup only.  Every datagram
 * dropped on the way is counted.  The association lives as long as its
 * TCP connection: the session closes it when that ends.
 */
#ifndef SOCKS5D_UDP_H
#define SOCKS5D_UDP_H

#include "proto.h"

#include <stdint.h>
#include <sys/socket.h>

#include <asyncore.h>
#include <asyncore_resolver.h>

struct cidr_list;
struct s5_udp;

struct s5_udp_config {
    ac_map *map;                       /* the session's map: the sockets go in it */
    ac_resolver *resolver;             /* for names (NULL: datagrams to a name are dropped) */
    const struct cidr_list *deny_dest; /* no datagram to or from these (NULL: none) */
    const struct sockaddr *bind_addr;  /* source address toward destinations (-b), or NULL */
    socklen_t bind_len;
    /* Not used: the session's TCP connection owns the association's life
     * (its --idle-timeout ends both); kept so that the session can say it. */
    double idle_timeout;
};

struct s5_udp_stats {
    uint64_t up, down;     /* payload bytes: client -> destinations, destinations -> client */
    unsigned long dropped; /* datagrams not relayed, either way */
};

/* Open the relay for the TCP client at `client` (datagrams accepted only
 * from that IP, and from req's port when the request named one; req may
 * be NULL), bound to the IP of `local` (the TCP connection's local
 * address) on a kernel-chosen port: *bnd gets the address for the reply
 * (an IPv4 address for an IPv4 client of a dual-stack listener).  *cfg is
 * copied (bind_addr too); the resolver and the deny_dest list must outlive
 * the association.  Returns 0 and the association in *out, or -ENOMEM,
 * -EAFNOSUPPORT (client or local is not IPv4 or IPv6), or the socket's
 * -errno (the session answers with a general failure); on failure nothing
 * is left open. */
int s5_udp_open(struct s5_udp **out, const struct s5_udp_config *cfg, const struct sockaddr *client,
                socklen_t clen, const struct sp_request *req, const struct sockaddr *local,
                socklen_t llen, struct sockaddr_storage *bnd, socklen_t *bndlen);

/* End the association (its TCP connection ended): closes its sockets,
 * cancels the lookups it waits for (no callback comes afterwards), drops
 * the datagrams still queued (counted), fills *st (may be NULL) and frees
 * u.  May be called from any handler of the map: events of its sockets
 * still due in the current iteration are dropped by the map. */
void s5_udp_close(struct s5_udp *u, struct s5_udp_stats *st);

#endif /* SOCKS5D_UDP_H */
