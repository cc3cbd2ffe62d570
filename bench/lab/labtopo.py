#!/usr/bin/python3
"""Renders a lab topology (configs/lab.yaml) into what bench/lab/anycast.sh runs.

    labtopo.py TOPOLOGY WORKDIR PREFIX [--virtio PROXY] [--no-netem] [--relay-latency MIN_MS]

--relay-latency MIN_MS (with --no-netem): two-host links with a latency of
at least MIN_MS run through bench/lab/delay.py in a namespace of their own
(PREFIX-d<lan>), the runner starts it.
The topology's `fast_reroute: true` (LAB_FAST_REROUTE=0|1 overrides it)
adds, on each router with proxies on its LANs, a static route to the
anycast prefix via those proxies with BFD-tracked next hops, preferred over
OSPF: failover without waiting for BIRD's OSPF tick.

writes into WORKDIR:
  setup.sh           namespaces, veths, bridges, addresses, sysctls, netem
  lab.env            bash variables describing the lab (hosts by role, addresses,
                     proxy ids and clusters, interface names, groups)
  <proxy>.piasd.yaml piasd's config (port on the LAN veth, exception tap,
                     static `pias:` tables from the topology's groups, or with
                     `control: dynamic` (or LAB_CONTROL=dynamic) the control
                     plane on: WORKDIR/group.key and WORKDIR/owner.pub must exist)
  <host>.bird.conf   BIRD 2: OSPF (ECMP) + BFD on routers and proxies
  web.nginx.conf, dns.unbound.conf   the targets' servers

Every namespace is PREFIX-<host>. Every error names the file and the key.
Needs python3-yaml (Debian). Runs with Debian's /usr/bin/python3.
"""

import ipaddress
import os
import sys

try:
    import yaml
except ImportError:
    sys.exit("labtopo: missing python3-yaml; install it with: apt-get install -y python3-yaml")


class TopoError(Exception):
    pass


def need(d, key, where, kind=None):
    if not isinstance(d, dict) or key not in d:
        raise TopoError(f"{where}: missing key `{key}`")
    v = d[key]
    if kind is not None and not isinstance(v, kind):
        raise TopoError(f"{where}.{key}: expected {kind.__name__}, found {v!r}")
    return v


DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def doc_only(addr, where):
    a = ipaddress.ip_address(addr) if not isinstance(addr, ipaddress.IPv4Network) else addr
    ok = any((a.subnet_of(n) if isinstance(a, ipaddress.IPv4Network) else a in n) for n in DOC_NETS)
    if not ok:
        raise TopoError(f"{where}: {addr} is outside the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)")


class Topo:
    def __init__(self, path):
        self.path = path
        with open(path) as f:
            t = yaml.safe_load(f)
        w = os.path.basename(path)
        self.anycast = ipaddress.ip_network(need(t, "anycast", w, str))
        doc_only(self.anycast, f"{w}: anycast")
        self.control = os.environ.get("LAB_CONTROL") or t.get("control", "static")
        if self.control not in ("static", "dynamic"):
            raise TopoError(f"{w}: control: expected static or dynamic, found {self.control!r}")
        fr = t.get("fast_reroute", False)
        if not isinstance(fr, bool):
            raise TopoError(f"{w}: fast_reroute: expected true or false, found {fr!r}")
        env_fr = os.environ.get("LAB_FAST_REROUTE")
        if env_fr not in (None, "", "0", "1"):
            raise TopoError(f"LAB_FAST_REROUTE (overriding {w}: fast_reroute): expected 0 or 1, found {env_fr!r}")
        self.fast_reroute = fr if env_fr in (None, "") else env_fr == "1"
        self.hosts = need(t, "hosts", w, dict)
        for h, d in self.hosts.items():
            if len(h) > 6:
                raise TopoError(f"{w}: hosts.{h}: names are at most 6 characters (they become interface names)")
            r = need(d, "role", f"{w}: hosts.{h}", str)
            if r not in ("router", "client", "proxy", "target"):
                raise TopoError(f"{w}: hosts.{h}.role: expected router|client|proxy|target, found {r!r}")
        self.lans = need(t, "lans", w, list)
        self.addr = {}  # (host, lan) -> address
        self.lan_of = {}  # host -> [lan names]
        for i, lan in enumerate(self.lans):
            where = f"{w}: lans[{i}]"
            name = need(lan, "name", where, str)
            if len(name) > 4:
                raise TopoError(f"{where}.name: at most 4 characters, found {name!r}")
            net = ipaddress.ip_network(need(lan, "net", where, str))
            doc_only(net, f"{where}.net")
            lan["_net"] = net
            members = need(lan, "members", where, dict)
            if len(members) < 2:
                raise TopoError(f"{where}.members: a link needs two members at least")
            if len(members) > 2 and "bridge" not in lan:
                raise TopoError(f"{where}: more than two members need `bridge: HOST`")
            if "bridge" in lan and lan["bridge"] not in members:
                raise TopoError(f"{where}.bridge: {lan['bridge']} is not a member")
            for h, a in members.items():
                if h not in self.hosts:
                    raise TopoError(f"{where}.members.{h}: no such host in `hosts`")
                if ipaddress.ip_address(a) not in net:
                    raise TopoError(f"{where}.members.{h}: {a} is not in {net}")
                self.addr[(h, name)] = a
                self.lan_of.setdefault(h, []).append(name)
        for h, d in self.hosts.items():
            if h not in self.lan_of:
                raise TopoError(f"{w}: hosts.{h}: on no lan")
            if d["role"] in ("proxy", "client", "target") and len(self.lan_of[h]) != 1:
                raise TopoError(f"{w}: hosts.{h}: a {d['role']} sits on exactly one lan")
        self.bfd = t.get("bfd", {"interval_ms": 100, "multiplier": 3})
        self.ospf = t.get("ospf", {"hello_s": 1, "dead_s": 4})
        self.groups = t.get("groups", [])
        for i, g in enumerate(self.groups):
            where = f"{w}: groups[{i}]"
            need(g, "group", where, str)
            for r in g.get("raps", []):
                if self.role(r) != "proxy":
                    raise TopoError(f"{where}.raps: {r} is not a proxy")
            for j, tg in enumerate(need(g, "targets", where, list)):
                if self.role(need(tg, "host", f"{where}.targets[{j}]")) != "target":
                    raise TopoError(f"{where}.targets[{j}].host: {tg['host']} is not a target")
                if self.role(need(tg, "jap", f"{where}.targets[{j}]")) != "proxy":
                    raise TopoError(f"{where}.targets[{j}].jap: {tg['jap']} is not a proxy")

    def role(self, h):
        return self.hosts.get(h, {}).get("role")

    def by_role(self, r):
        return [h for h, d in self.hosts.items() if d["role"] == r]

    def lan(self, name):
        return next(l for l in self.lans if l["name"] == name)

    def ip(self, h):
        """The address of a single-lan host."""
        return self.addr[(h, self.lan_of[h][0])]

    def gateway(self, h):
        lan = self.lan(self.lan_of[h][0])
        r = [m for m in lan["members"] if self.role(m) == "router"]
        if not r:
            raise TopoError(f"{self.path}: host {h}: its lan {lan['name']} has no router")
        return lan["members"][r[0]]


def ifname(t, host, lan):
    """The interface of HOST on LAN, inside HOST's namespace."""
    return lan


def setup_sh(t, prefix, netem, relay=None, relays=None):
    relays = relays if relays is not None else []
    out = ["#!/bin/bash", "# generated by labtopo.py; run by anycast.sh", "set -eu",
           f'P={prefix}', 'run() { "$@" || { echo "setup: failed on host ${H:-?}: $*" >&2; exit 1; }; }']
    for h in t.hosts:
        out.append(f"H={h}; run ip netns add $P-{h}; run ip -n $P-{h} link set lo up")
    for lan in t.lans:
        name, net = lan["name"], lan["_net"]
        mem = list(lan["members"])
        br = lan.get("bridge")
        if br:
            out.append(f"H={br}; run ip -n $P-{br} link add name {name} type bridge; run ip -n $P-{br} link set {name} up")
            out.append(f"run ip netns exec $P-{br} sysctl -qw net.ipv6.conf.{name}.disable_ipv6=1")
            for m in mem:
                if m == br:
                    continue
                peer = f"{name}-{m}"
                out.append(f"H={m}; run ip link add {name} netns $P-{m} type veth peer name {peer} netns $P-{br}")
                out.append(f"run ip -n $P-{br} link set {peer} master {name}; run ip -n $P-{br} link set {peer} up")
                out.append(f"run ip -n $P-{m} link set {name} up")
                # The DPDK side reads finished checksums (common.sh).
                out.append(f"run ip netns exec $P-{br} ethtool -K {peer} tx off >/dev/null")
                if netem and lan.get("latency_ms"):
                    out.append(f"run ip netns exec $P-{br} tc qdisc add dev {peer} root netem delay {lan['latency_ms']}ms")
        elif relay is not None and not netem and lan.get("latency_ms", 0) >= relay:
            # No netem: the link runs through delay.py in its own namespace.
            a, b = mem
            d = f"d{name}"
            out.append(f"H={d}; run ip netns add $P-{d}; run ip -n $P-{d} link set lo up")
            for m, end in ((a, "rla"), (b, "rlb")):
                out.append(f"H={m}; run ip link add {name} netns $P-{m} type veth peer name {end} netns $P-{d}")
                out.append(f"run ip -n $P-{m} link set {name} up; run ip -n $P-{d} link set dev {end} up")
                # delay.py moves frames with AF_PACKET: no GSO frames.
                out.append(f"run ip netns exec $P-{m} ethtool -K {name} tso off gso off gro off >/dev/null")
                out.append(f"run ip netns exec $P-{d} ethtool -K {end} tx off tso off gso off gro off >/dev/null")
                out.append(f"run ip netns exec $P-{d} sysctl -qw net.ipv6.conf.{end}.disable_ipv6=1")
            relays.append(f"{d}:{lan['latency_ms']}")
        else:
            a, b = mem
            out.append(f"H={a}; run ip link add {name} netns $P-{a} type veth peer name {name} netns $P-{b}")
            for m in (a, b):
                out.append(f"H={m}; run ip -n $P-{m} link set {name} up")
                if netem and lan.get("latency_ms"):
                    out.append(f"run ip netns exec $P-{m} tc qdisc add dev {name} root netem delay {lan['latency_ms']}ms")
        for m in mem:
            # veth ends that the kernel owns send finished checksums too,
            # since the far end may be a DPDK port.
            if t.role(m) != "proxy" and not (br and m == br):
                out.append(f"H={m}; run ip netns exec $P-{m} ethtool -K {name} tx off >/dev/null")
            if t.role(m) == "proxy":
                continue  # the address lives on piasd's exception tap
            out.append(f"H={m}; run ip -n $P-{m} addr add {lan['members'][m]}/{net.prefixlen} dev {name}")
            out.append(f"run ip netns exec $P-{m} sysctl -qw net.ipv6.conf.{name}.disable_ipv6=1")
    for h in t.by_role("router"):
        out.append(f"H={h}; run ip netns exec $P-{h} sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
        for l in t.lan_of[h]:
            out.append(f"run ip netns exec $P-{h} sysctl -qw net.ipv4.conf.{l}.rp_filter=0")
    for h in t.by_role("client") + t.by_role("target"):
        out.append(f"H={h}; run ip -n $P-{h} route add default via {t.gateway(h)}")
    for h in t.by_role("proxy"):
        l = t.lan_of[h][0]
        # As common.sh's lab_dpdk_port: the kernel ignores the DPDK veth.
        out.append(f"H={h}; run ip netns exec $P-{h} sysctl -qw net.ipv6.conf.{l}.disable_ipv6=1 "
                   f"net.ipv4.conf.{l}.arp_ignore=8 net.ipv4.conf.{l}.rp_filter=1 net.ipv4.conf.all.rp_filter=1")
    return "\n".join(out) + "\n"


def rtt_us(t, a, b):
    """RTT between two clusters from the lan latencies along the lab's one
    path between their routers (the lab has one wan)."""
    one_way = sum(l.get("latency_ms", 0) for l in t.lans if l["name"] == "wan")
    return max(100, 2 * one_way * 1000)


def piasd_yaml(t, h, work, prefix, virtio):
    d = t.hosts[h]
    lan = t.lan_of[h][0]
    net = t.lan(lan)["_net"]
    me = t.ip(h)
    peers = [t.ip(p) for p in t.by_role("proxy") if p != h and t.lan_of[p][0] == lan]
    if virtio:
        vdev = f"net_virtio_user0,path={work}/{h}.vhost.sock,queues=1"
        dev = "net_virtio_user0"
    else:
        vdev = f"net_af_packet0,iface={lan}"
        dev = "net_af_packet0"
    ids = {p: t.hosts[p]["id"] for p in t.by_role("proxy")}
    clusters = sorted({t.hosts[p]["cluster"] for p in t.by_role("proxy")})
    y = {
        "eal": {"lcores": "0@0,1@1", "memory_mb": 256, "no_huge": True,
                "file_prefix": f"{prefix}-{h}-{os.getpid()}", "vdevs": [vdev]},
        "workers": 1,
        "idle_sleep_us": 50,
        "ports": [{"device": dev, "address": f"{me}/{net.prefixlen}", "gateway": t.gateway(h),
                   "neighbours": peers, "exception": {"tap": f"{lan}tap"}}],
        "anycast": {"prefixes": [str(t.anycast)]},
        "control_socket": f"{work}/{h}.sock",
    }
    pias = {
        "me": d["id"],
        "proxies": [{"id": ids[p], "address": t.ip(p), "cluster": t.hosts[p]["cluster"]} for p in t.by_role("proxy")],
        "rtt": [{"a": a, "b": b, "rtt_us": rtt_us(t, a, b)} for i, a in enumerate(clusters) for b in clusters[i + 1:]],
        "groups": [],
    }
    for g in t.groups:
        e = {"group": g["group"]}
        if g.get("criterion"):
            e["criterion"] = g["criterion"]
        if g.get("affinity"):
            e["affinity"] = True
        e["raps"] = [ids[r] for r in g.get("raps", [])]
        japs = {}
        for tg in g["targets"]:
            japs[tg["jap"]] = japs.get(tg["jap"], 0) + 1
        if h in g.get("raps", []):
            e["japs"] = [{"proxy": ids[j], "targets": n} for j, n in japs.items()]
        mine = [tg for tg in g["targets"] if tg["jap"] == h]
        if mine:
            e["targets"] = [{"address": f"{t.ip(tg['host'])}:{tg['port']}"} for tg in mine]
        if g.get("pin_cache"):
            e["cache"] = [ids[j] for j in japs]
        pias["groups"].append(e)
    if t.control == "dynamic":
        pias = dynamic_pias(t, h, work)
    y["pias"] = pias
    return "# generated by labtopo.py from " + t.path + "\n" + yaml.safe_dump(y, sort_keys=False)


def dynamic_pias(t, h, work):
    """`control: dynamic`: this proxy alone, the control plane on, the
    groups registered with the owner's key; RAPs, JAPs, targets, caches and
    RTTs are learned at run time (targets join with pias-target)."""
    try:
        with open(os.path.join(work, "owner.pub")) as f:
            owner = next(w for w in f.read().split() if len(w) == 64)
    except (OSError, StopIteration):
        raise TopoError(f"{work}/owner.pub: no group owner key (pias-target keygen writes it)")
    d = t.hosts[h]
    groups = []
    for g in t.groups:
        e = {"group": g["group"], "owner_key": owner}
        if g.get("criterion"):
            e["criterion"] = g["criterion"]
        if g.get("affinity"):
            e["affinity"] = True
        groups.append(e)
    return {
        "me": d["id"],
        "proxies": [{"id": d["id"], "address": t.ip(h), "cluster": d["cluster"]}],
        "control": {
            "key_file": f"{work}/group.key",
            "boot_file": f"{work}/{h}.boot",
            "seeds": [t.ip(p) for p in t.by_role("proxy") if p != h],
            "heartbeat_ms": 200,
            "dead_multiplier": 5,
            "probe_interval_s": 1,
            "probe_retry_ms": 300,
            # A client moved to a cold IAP whose nearest RAP died with the
            # old IAP: another RAP is asked after this long.
            "query_delay_ms": 250,
        },
        "groups": groups,
    }


def bird_conf(t, h, work, fast=False):
    d = t.hosts[h]
    bfd = t.bfd
    o = t.ospf
    lines = [f"# generated by labtopo.py from {t.path}"]
    if d["role"] == "router":
        rid = d.get("router_id", t.addr[(h, t.lan_of[h][0])])
        lines.append(f"router id {rid};")
        lines.append(f'log "{work}/{h}.bird.log" all;')
        lines.append("protocol device { scan time 10; }")
        lines.append("protocol kernel { ipv4 { export all; import none; }; merge paths yes; }")
        ifs = []
        for l in t.lan_of[h]:
            lan = t.lan(l)
            others = [m for m in lan["members"] if m != h]
            transit = any(t.role(m) in ("router", "proxy") for m in others)
            proxies = any(t.role(m) == "proxy" for m in others)
            cost = lan.get("cost", 10)
            if transit:
                ptp = len(lan["members"]) == 2
                kind = "pointopoint" if ptp else "broadcast"
                ifs.append(f'    interface "{l}" {{ type {kind}; cost {cost}; hello {o["hello_s"]}; dead {o["dead_s"]}; '
                           f'retransmit 2; wait 2; priority 10; bfd {"yes" if proxies else "no"}; }};')
            else:
                ifs.append(f'    interface "{l}" {{ stub yes; cost {cost}; }};')
        lines.append(f'protocol bfd {{ interface "*" {{ min rx interval {bfd["interval_ms"]} ms; '
                     f'min tx interval {bfd["interval_ms"]} ms; multiplier {bfd["multiplier"]}; }}; debug {{ states }}; }}')
        lines.append("protocol ospf v2 {\n  debug { states };\n  ipv4 { export none; import all; };\n  ecmp yes;\n  area 0 {\n" + "\n".join(ifs) + "\n  };\n}")
        if fast:
            # BIRD's OSPF recomputes routes on its tick (>= 1 s); a static
            # route whose next hops BFD tracks drops a dead one at once.
            # Preferred over OSPF (250 > 150) on the cluster's own router
            # only; OSPF still carries the prefix everywhere else.
            hops = [t.ip(p) for l in t.lan_of[h] for p in t.lan(l)["members"] if t.role(p) == "proxy"]
            if hops:
                lines.append(f"protocol static anycast_bfd {{\n  ipv4 {{ preference 250; }};\n"
                             f"  route {t.anycast} " + " ".join(f"via {a} bfd" for a in hops) + ";\n}")
    else:  # proxy: OSPF over the exception tap, announcing the anycast prefix
        lan = t.lan_of[h][0]
        lines.append(f"router id {t.ip(h)};")
        lines.append(f'log "{work}/{h}.bird.log" all;')
        lines.append("protocol device { scan time 1; }")
        lines.append(f'protocol bfd {{ interface "{lan}tap" {{ min rx interval {bfd["interval_ms"]} ms; '
                     f'min tx interval {bfd["interval_ms"]} ms; multiplier {bfd["multiplier"]}; }}; debug {{ states }}; }}')
        cost = t.lan(lan).get("cost", 10)
        lines.append("protocol ospf v2 {\n  debug { states };\n  ipv4 { export none; import none; };\n  area 0 {\n"
                     f"    stubnet {t.anycast};\n"
                     f'    interface "{lan}tap" {{ type broadcast; cost {cost}; hello {o["hello_s"]}; dead {o["dead_s"]}; '
                     "retransmit 2; wait 2; priority 0; bfd yes; };\n  };\n}")
    return "\n".join(lines) + "\n"


def nginx_conf(t, h, work):
    return f"""# generated by labtopo.py
daemon off;
master_process off;
user root;
worker_processes 1;
pid {work}/{h}.nginx.pid;
error_log {work}/{h}.nginx.err info;
events {{ worker_connections 256; }}
http {{
  access_log {work}/{h}.nginx.access;
  client_body_temp_path {work}/{h}.nginx-tmp;
  proxy_temp_path {work}/{h}.nginx-tmp;
  fastcgi_temp_path {work}/{h}.nginx-tmp;
  uwsgi_temp_path {work}/{h}.nginx-tmp;
  scgi_temp_path {work}/{h}.nginx-tmp;
  server {{
    listen {t.ip(h)}:80;
    location / {{ default_type text/plain; return 200 "hello from {h} ($remote_addr:$remote_port -> $server_addr)\\n"; }}
    location /blob {{ alias {work}/blob; }}
  }}
}}
"""


def unbound_conf(t, h, work):
    return f"""# generated by labtopo.py
server:
  interface: {t.ip(h)}
  port: 53
  do-ip6: no
  do-tcp: yes
  access-control: 0.0.0.0/0 allow
  username: ""
  chroot: ""
  directory: "{work}"
  pidfile: "{work}/{h}.unbound.pid"
  logfile: "{work}/{h}.unbound.log"
  use-syslog: no
  do-daemonize: no
  verbosity: 1
  num-threads: 1
  module-config: "iterator"
  local-zone: "lab." static
  local-data: "www.lab. 60 IN A {t.ip('web') if 'web' in t.hosts else '203.0.113.66'}"
  local-data: "dns.lab. 60 IN TXT \\"answered by {h}\\""
remote-control:
  control-enable: no
"""


def env(t, prefix, work, virtio):
    v = {
        "LAB_ROUTERS": " ".join(t.by_role("router")),
        "LAB_CLIENTS": " ".join(t.by_role("client")),
        "LAB_PROXIES": " ".join(t.by_role("proxy")),
        "LAB_TARGETS": " ".join(t.by_role("target")),
        "LAB_ANYCAST": str(t.anycast),
        "LAB_VIRTIO": virtio or "",
        "LAB_CONTROL": t.control,
        "LAB_FAST_REROUTE": "1" if t.fast_reroute else "0",
    }
    for h, d in t.hosts.items():
        if len(t.lan_of[h]) == 1:
            v[f"IP_{h}"] = t.ip(h)
            v[f"LAN_{h}"] = t.lan_of[h][0]
        if d["role"] == "proxy":
            v[f"ID_{h}"] = str(d["id"])
            v[f"CLUSTER_{h}"] = str(d["cluster"])
        if d["role"] == "target":
            v[f"SERVICE_{h}"] = d["service"]
        if d["role"] == "client":
            v[f"REGION_{h}"] = d.get("region", "")
        if d["role"] in ("client", "target", "proxy"):
            # The router of its lan (for a client or target: where its
            # packets to the anycast prefix are routed, its catchment).
            v[f"ROUTER_{h}"] = next(m for m in t.lan(t.lan_of[h][0])["members"] if t.role(m) == "router")
    for c in sorted({t.hosts[p]["cluster"] for p in t.by_role("proxy")}):
        v[f"CLUSTER_{c}"] = " ".join(p for p in t.by_role("proxy") if t.hosts[p]["cluster"] == c)
    for i, g in enumerate(t.groups):
        v[f"GROUP_{i}"] = g["group"]
        v[f"GROUP_{i}_JAPS"] = " ".join(sorted({tg["jap"] for tg in g["targets"]}))
        v[f"GROUP_{i}_RAPS"] = " ".join(g.get("raps", []))
        v[f"GROUP_{i}_TARGETS"] = " ".join(f"{tg['host']}:{tg['port']}" for tg in g["targets"])
    v["LAB_GROUPS"] = str(len(t.groups))
    return "".join(f"{k}='{val}'\n" for k, val in v.items())


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    virtio = None
    if "--virtio" in argv:
        virtio = argv[argv.index("--virtio") + 1]
        args.remove(virtio)
    netem = "--no-netem" not in argv
    relay = None
    if "--relay-latency" in argv:
        relay = float(argv[argv.index("--relay-latency") + 1])
        args.remove(argv[argv.index("--relay-latency") + 1])
    if len(args) != 3:
        sys.exit(__doc__)
    topo, work, prefix = args
    try:
        t = Topo(topo)
        if virtio and t.role(virtio) != "proxy":
            raise TopoError(f"--virtio {virtio}: not a proxy of {topo}")
        relays = []
        files = {"setup.sh": setup_sh(t, prefix, netem, relay, relays)}
        files["lab.env"] = env(t, prefix, work, virtio) + f"LAB_RELAYS='{' '.join(relays)}'\n"
        for h in t.by_role("proxy"):
            files[f"{h}.piasd.yaml"] = piasd_yaml(t, h, work, prefix, h == virtio)
            files[f"{h}.bird.conf"] = bird_conf(t, h, work)
        for h in t.by_role("router"):
            files[f"{h}.bird.conf"] = bird_conf(t, h, work, t.fast_reroute)
        for h in t.by_role("target"):
            s = t.hosts[h].get("service")
            if s == "nginx":
                files[f"{h}.nginx.conf"] = nginx_conf(t, h, work)
            elif s == "unbound":
                files[f"{h}.unbound.conf"] = unbound_conf(t, h, work)
            elif s != "iperf3":
                raise TopoError(f"{topo}: hosts.{h}.service: expected nginx|unbound|iperf3, found {s!r}")
    except (TopoError, yaml.YAMLError, OSError, KeyError, ValueError) as e:
        sys.exit(f"labtopo: {e}")
    for name, text in files.items():
        with open(os.path.join(work, name), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main(sys.argv)
