#!/usr/bin/env bash
# The anycast lab's traffic set with proxy p2a on DPDK's virtio PMD: its
# port is net_virtio_user on a vhost-user socket served by dpdk-testpmd
# (net_vhost <-> net_af_packet on the LAN veth, io forwarding), the path a
# VM's virtio NIC takes. p2a is the JAP of the HTTP and whole-IP groups and
# the RAP of the DNS group, so every flow crosses it. All --no-huge: EAL
# backs --no-huge memory with memfd, which vhost-user maps (DPDK >= 19.02).
# Env as anycast.sh.
here=$(cd "$(dirname "$0")" && pwd)
export LAB_VIRTIO_PROXY=${LAB_VIRTIO_PROXY:-p2a}
exec bash "$here/anycast.sh" basic load
