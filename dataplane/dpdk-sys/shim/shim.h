/*
 * switchyard's DPDK shim: DPDK's fast path is static inline C, which
 * bindgen cannot bind. Each sy_* function below is a real symbol wrapping
 * one of them; see shim.c.
 */
#ifndef SWITCHYARD_DPDK_SHIM_H
#define SWITCHYARD_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

/* rte_errno of the calling thread (a per-lcore TLS variable in DPDK). */
int sy_errno(void);
/* rte_lcore_id(): LCORE_ID_ANY (UINT32_MAX) on an unregistered thread. */
unsigned int sy_lcore_id(void);

/* RSS hash types the dataplane asks for: IP, TCP and UDP (RTE_BIT64 macros
 * bindgen cannot evaluate). */
uint64_t sy_rss_hf_ip_tcp_udp(void);

uint16_t sy_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t sy_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *sy_pktmbuf_alloc(struct rte_mempool *mp);
int sy_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
void sy_pktmbuf_free(struct rte_mbuf *m);

/* Frame start (rte_pktmbuf_mtod). */
void *sy_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t sy_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t sy_pktmbuf_tailroom(const struct rte_mbuf *m);
void sy_pktmbuf_reset_headroom(struct rte_mbuf *m);
/* Each returns NULL (resp. -1) and leaves the mbuf unchanged if it does not fit. */
char *sy_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int sy_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);

/* The node's mbuf pool: see shim.c for why it differs without hugepages. */
struct rte_mempool *sy_pktmbuf_pool_create(const char *name, unsigned int n, unsigned int cache,
                                           uint16_t data_room, int socket);

#endif
