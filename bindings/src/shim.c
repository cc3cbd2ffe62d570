/*
 * See shim.h. Compiled by build.rs with the same `pkg-config --cflags libdpdk`
 * tokens as the bindings (they carry -march=corei7, which rte_memcpy needs).
 */
#include "wrapper.h"

int pias_errno(void) { return rte_errno; }
void pias_set_errno(int value) { rte_errno = value; }

uint16_t pias_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t pias_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *pias_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int pias_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			    unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void pias_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *pias_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *pias_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

char *pias_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

int pias_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

uint16_t pias_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t pias_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

int pias_pktmbuf_is_contiguous(const struct rte_mbuf *m)
{
	return rte_pktmbuf_is_contiguous(m);
}

uint16_t pias_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

int pias_mempool_full(const struct rte_mempool *mp)
{
	return rte_mempool_full(mp);
}

int pias_mempool_empty(const struct rte_mempool *mp)
{
	return rte_mempool_empty(mp);
}

unsigned int pias_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
				     unsigned int n, unsigned int *free_space)
{
	return rte_ring_enqueue_burst(r, objs, n, free_space);
}

unsigned int pias_ring_mp_enqueue_burst(struct rte_ring *r, void *const *objs,
					unsigned int n, unsigned int *free_space)
{
	return rte_ring_mp_enqueue_burst(r, objs, n, free_space);
}

unsigned int pias_ring_sp_enqueue_burst(struct rte_ring *r, void *const *objs,
					unsigned int n, unsigned int *free_space)
{
	return rte_ring_sp_enqueue_burst(r, objs, n, free_space);
}

unsigned int pias_ring_dequeue_burst(struct rte_ring *r, void **objs,
				     unsigned int n, unsigned int *available)
{
	return rte_ring_dequeue_burst(r, objs, n, available);
}

unsigned int pias_ring_mc_dequeue_burst(struct rte_ring *r, void **objs,
					unsigned int n, unsigned int *available)
{
	return rte_ring_mc_dequeue_burst(r, objs, n, available);
}

unsigned int pias_ring_sc_dequeue_burst(struct rte_ring *r, void **objs,
					unsigned int n, unsigned int *available)
{
	return rte_ring_sc_dequeue_burst(r, objs, n, available);
}

unsigned int pias_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
unsigned int pias_ring_free_count(const struct rte_ring *r) { return rte_ring_free_count(r); }
unsigned int pias_ring_get_capacity(const struct rte_ring *r) { return rte_ring_get_capacity(r); }

unsigned int pias_lcore_id(void) { return rte_lcore_id(); }
uint64_t pias_rdtsc(void) { return rte_rdtsc(); }
uint64_t pias_get_tsc_cycles(void) { return rte_get_tsc_cycles(); }
void pias_pause(void) { rte_pause(); }
