/*
 * Everything bindgen sees: the DPDK 22.11 headers the safe layer uses, plus
 * the shim's own prototypes (the fast-path static inlines, which bindgen cannot
 * link to, re-exported as real symbols).
 */
#ifndef PIAS_WRAPPER_H
#define PIAS_WRAPPER_H

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_bus_vdev.h>
#include <rte_log.h>

#include "shim.h"

#endif
