/*
 * Everything dpdk-sys binds: the DPDK headers it needs, and the shim that turns DPDK's
 * `static inline` functions and the thread-local `rte_errno` into real symbols Rust can call.
 * Each shim function is named `shim_<original name>` and behaves exactly like the original.
 */
#ifndef OPENAIS_DPDK_SHIM_H
#define OPENAIS_DPDK_SHIM_H

#include <stdint.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_version.h>

/* rte_errno is a thread-local macro, not a symbol. */
int shim_rte_errno(void);

/* The lcore id of the calling thread (LCORE_ID_ANY for unregistered threads). */
unsigned shim_rte_lcore_id(void);

/* Burst I/O: inline in rte_ethdev.h. */
uint16_t shim_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t shim_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                               struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* Mbuf handling: inline in rte_mbuf.h. */
struct rte_mbuf *shim_rte_pktmbuf_alloc(struct rte_mempool *mp);
int shim_rte_pktmbuf_alloc_bulk(struct rte_mempool *pool, struct rte_mbuf **mbufs,
                                unsigned count);
void shim_rte_pktmbuf_free(struct rte_mbuf *m);
/* rte_pktmbuf_mtod is a macro: the start of the first segment's data. */
void *shim_rte_pktmbuf_mtod(struct rte_mbuf *m);
char *shim_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int shim_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void shim_rte_pktmbuf_reset(struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t shim_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t shim_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t shim_rte_mbuf_nb_segs(const struct rte_mbuf *m);

/* Idle loop hint: inline (PAUSE on x86). */
void shim_rte_pause(void);

#endif
