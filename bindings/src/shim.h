/*
 * Real, linkable symbols for DPDK fast-path functions that are `static inline`
 * (or macros) in the headers. Each one is a thin call into the inline body; the
 * compiler inlines that body here, so a Rust caller pays one direct call.
 */
#ifndef PIAS_SHIM_H
#define PIAS_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* rte_errno is a per-thread variable behind a macro. */
int pias_errno(void);
void pias_set_errno(int value);

/* ethdev bursts */
uint16_t pias_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t pias_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbufs */
struct rte_mbuf *pias_pktmbuf_alloc(struct rte_mempool *mp);
int pias_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			    unsigned int count);
void pias_pktmbuf_free(struct rte_mbuf *m);
char *pias_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *pias_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *pias_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int pias_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t pias_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t pias_pktmbuf_tailroom(const struct rte_mbuf *m);
int pias_pktmbuf_is_contiguous(const struct rte_mbuf *m);
uint16_t pias_mbuf_refcnt_read(const struct rte_mbuf *m);

/* mempools (avail/in_use are real symbols already; these are inline) */
int pias_mempool_full(const struct rte_mempool *mp);
int pias_mempool_empty(const struct rte_mempool *mp);

/* rings of pointers */
unsigned int pias_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
				     unsigned int n, unsigned int *free_space);
unsigned int pias_ring_mp_enqueue_burst(struct rte_ring *r, void *const *objs,
					unsigned int n, unsigned int *free_space);
unsigned int pias_ring_sp_enqueue_burst(struct rte_ring *r, void *const *objs,
					unsigned int n, unsigned int *free_space);
unsigned int pias_ring_dequeue_burst(struct rte_ring *r, void **objs,
				     unsigned int n, unsigned int *available);
unsigned int pias_ring_mc_dequeue_burst(struct rte_ring *r, void **objs,
					unsigned int n, unsigned int *available);
unsigned int pias_ring_sc_dequeue_burst(struct rte_ring *r, void **objs,
					unsigned int n, unsigned int *available);
unsigned int pias_ring_count(const struct rte_ring *r);
unsigned int pias_ring_free_count(const struct rte_ring *r);
unsigned int pias_ring_get_capacity(const struct rte_ring *r);

/* lcores and time */
unsigned int pias_lcore_id(void);
uint64_t pias_rdtsc(void);
uint64_t pias_get_tsc_cycles(void);
void pias_pause(void);

#endif
