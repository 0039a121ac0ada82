/*
 * Real symbols for DPDK's static-inline functions, so Rust can call them.
 * Compiled by build.rs with every flag of `pkg-config --cflags libdpdk`.
 */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>
#include <rte_mempool.h>

#include "shim.h"

int sy_errno(void) { return rte_errno; }

unsigned int sy_lcore_id(void) { return rte_lcore_id(); }

uint64_t sy_rss_hf_ip_tcp_udp(void) { return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP; }

uint16_t sy_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t sy_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *sy_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int sy_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void sy_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void *sy_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint16_t sy_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }

uint16_t sy_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

void sy_pktmbuf_reset_headroom(struct rte_mbuf *m) { rte_pktmbuf_reset_headroom(m); }



char *sy_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

int sy_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }

/*
 * rte_pktmbuf_pool_create, but without hugepages the objects are packed
 * back to back in one chunk (RTE_MEMPOOL_F_NO_IOVA_CONTIG) instead of one
 * per 4 KiB page. DPDK 22.11's net_af_xdp registers as its umem only
 * populated_size * object size bytes from the pool's first object
 * (fixed in DPDK 24.07, "net/af_xdp: parse UMEM map info from mempool"):
 * page-padded, 16k mbufs span 64 MiB, the umem covers 37 MiB, and the
 * kernel rejects every fill-ring address above it, so the port receives
 * nothing once the pool hands out its upper mbufs. Without hugepages
 * there is no IOVA for a device to DMA to anyway; with them the pool is
 * created as DPDK does (IOVA-contiguous, packed).
 */
struct rte_mempool *sy_pktmbuf_pool_create(const char *name, unsigned int n, unsigned int cache,
                                           uint16_t data_room, int socket)
{
    if (rte_eal_has_hugepages())
        return rte_pktmbuf_pool_create(name, n, cache, 0, data_room, socket);
    struct rte_pktmbuf_pool_private priv = {.mbuf_data_room_size = data_room};
    struct rte_mempool *mp =
        rte_mempool_create_empty(name, n, sizeof(struct rte_mbuf) + data_room, cache, sizeof(priv),
                                 socket, RTE_MEMPOOL_F_NO_IOVA_CONTIG);
    if (mp == NULL)
        return NULL;
    if (rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), NULL) != 0)
        goto fail;
    rte_pktmbuf_pool_init(mp, &priv);
    if (rte_mempool_populate_default(mp) < 0)
        goto fail;
    rte_mempool_obj_iter(mp, rte_pktmbuf_init, NULL);
    return mp;
fail:;
    int err = rte_errno;
    rte_mempool_free(mp);
    rte_errno = err;
    return NULL;
}
