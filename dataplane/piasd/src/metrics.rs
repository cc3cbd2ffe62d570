//! Prometheus export through the `metrics` facade.
//!
//! The control core calls [`export`] once a second with the status it just
//! aggregated; values are set as absolute counters (they are totals the
//! workers keep), so a scrape never sees a counter go backwards.

use std::net::SocketAddr;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::ctl::Status;

/// Starts the HTTP exporter on `listen` (its own thread; never a worker).
pub fn install(listen: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()
        .map_err(|e| format!("metrics exporter on {listen}: {e}"))
}

/// Sets every metric from `st`.
pub fn export(st: &Status) {
    for p in &st.ports {
        let l = [("port", p.device.clone())];
        counter!("pias_port_rx_packets_total", &l).absolute(p.ipackets);
        counter!("pias_port_tx_packets_total", &l).absolute(p.opackets);
        counter!("pias_port_rx_bytes_total", &l).absolute(p.ibytes);
        counter!("pias_port_tx_bytes_total", &l).absolute(p.obytes);
        counter!("pias_port_rx_missed_total", &l).absolute(p.imissed);
        counter!("pias_port_rx_errors_total", &l).absolute(p.ierrors);
        counter!("pias_port_tx_errors_total", &l).absolute(p.oerrors);
        counter!("pias_port_rx_nombuf_total", &l).absolute(p.rx_nombuf);
        gauge!("pias_port_link_up", &l).set(if p.link_up { 1.0 } else { 0.0 });
    }
    for w in &st.workers {
        for (pi, p) in st.ports.iter().enumerate() {
            let l = [("worker", w.index.to_string()), ("port", p.device.clone())];
            counter!("pias_worker_rx_packets_total", &l).absolute(w.rx.get(pi).copied().unwrap_or(0));
            counter!("pias_worker_tx_packets_total", &l).absolute(w.tx.get(pi).copied().unwrap_or(0));
        }
        let l = [("worker", w.index.to_string())];
        counter!("pias_worker_punted_total", &l).absolute(w.punted);
        counter!("pias_worker_echo_replied_total", &l).absolute(w.echo_replied);
        counter!("pias_worker_loops_total", &l).absolute(w.loops);
        counter!("pias_worker_handoff_in_total", &l).absolute(w.handoff_in);
        counter!("pias_worker_handoff_out_total", &l).absolute(w.handoff_out);
        gauge!("pias_worker_nat_flows", &l).set(w.nat_flows as f64);
        for (name, v) in &w.path {
            let l = [("worker", w.index.to_string()), ("stage", name.clone())];
            counter!("pias_path_packets_total", &l).absolute(*v);
        }
        for (reason, v) in &w.drops {
            let l = [("worker", w.index.to_string()), ("reason", reason.clone())];
            counter!("pias_worker_drops_total", &l).absolute(*v);
        }
    }
    let c = &st.control;
    counter!("pias_control_arp_replied_total").absolute(c.arp_replied);
    counter!("pias_control_arp_requests_sent_total").absolute(c.arp_requests_sent);
    counter!("pias_control_to_kernel_total").absolute(c.to_kernel);
    counter!("pias_control_from_kernel_total").absolute(c.from_kernel);
    counter!("pias_control_iap_misses_total").absolute(c.iap_misses);
    counter!("pias_control_rap_choices_total").absolute(c.rap_choices);
    counter!("pias_control_jap_no_target_total").absolute(c.jap_no_target);
    counter!("pias_control_datagrams_total").absolute(c.control_datagrams);
    for (reason, v) in &c.drops {
        counter!("pias_control_drops_total", "reason" => reason.clone()).absolute(*v);
    }
    for (reason, v) in &st.drops {
        counter!("pias_drops_total", "reason" => reason.clone()).absolute(*v);
    }
    if let Some(p) = &c.plane {
        counter!("pias_plane_accepted_total").absolute(p.accepted);
        for (reason, v) in &p.rejected {
            counter!("pias_plane_rejected_total", "reason" => reason.clone()).absolute(*v);
        }
        for (name, v) in &p.counters {
            counter!("pias_plane_events_total", "event" => name.clone()).absolute(*v);
        }
        gauge!("pias_plane_proxies_up").set(p.proxies.iter().filter(|x| x.up).count() as f64);
        gauge!("pias_plane_proxies_down").set(p.proxies.iter().filter(|x| !x.up).count() as f64);
        gauge!("pias_plane_local_targets").set(p.targets.values().map(|t| t.len()).sum::<usize>() as f64);
        let d = &p.driver;
        counter!("pias_plane_probes_total", "result" => "sent").absolute(d.probes_sent);
        counter!("pias_plane_probes_total", "result" => "answered").absolute(d.probes_answered);
        counter!("pias_plane_probes_total", "result" => "timed_out").absolute(d.probes_timed_out);
        counter!("pias_plane_datagrams_total", "dir" => "rx").absolute(d.rx_datagrams);
        counter!("pias_plane_datagrams_total", "dir" => "tx").absolute(d.tx_datagrams);
        counter!("pias_plane_malformed_total").absolute(d.rx_malformed);
    }
    gauge!("pias_mempool_in_use").set(f64::from(st.mempool_in_use));
    gauge!("pias_neighbours").set(st.neighbours.len() as f64);
}
