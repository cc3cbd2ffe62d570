//! The kernel exception path: a tap interface that mirrors a DPDK port, so
//! routing daemons (BIRD's OSPF and BFD), SSH and anything else addressed to
//! the proxy host itself keep working while DPDK owns the NIC.
//!
//! DPDK's `net_tap` PMD creates the interface (piasd adds one `--vdev` per
//! port with `exception.tap` set); this module gives it the port's MAC and
//! unicast address, so the kernel answers as the port would. It shells out
//! to iproute2 once at start-up: a configuration step, never the fast path.

use std::process::Command;

use pias_dataplane::types::Ipv4Prefix;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e} (is iproute2 installed?)", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Gives tap `name` the port's MAC, address and MTU, and brings it up.
/// IPv6 is turned off on it: piasd does not forward IPv6 yet, and the
/// kernel's router solicitations would only be counted as drops.
pub fn configure_tap(name: &str, mac: &[u8; 6], addr: &Ipv4Prefix, mtu: u16) -> Result<(), String> {
    let mac = crate::control::fmt_mac(mac);
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
    ip(&["link", "set", "dev", name, "down"])?;
    ip(&["link", "set", "dev", name, "address", &mac, "mtu", &mtu.to_string()])?;
    ip(&["addr", "replace", &addr.to_string(), "dev", name])?;
    ip(&["link", "set", "dev", name, "up"])
}
