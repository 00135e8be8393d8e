//! What a pairing URI says about this box: where to reach it and which key
//! to pin. The invite token is added per URI.

use std::net::{IpAddr, SocketAddr};

use imbox_protocol::{Fingerprint, PairingUri};

/// Everything of a pairing URI but the invite.
#[derive(Debug, Clone)]
pub struct PairingTemplate {
    pub hosts: Vec<String>,
    pub quic_port: Option<u16>,
    pub wss_port: Option<u16>,
    pub fingerprint: Fingerprint,
    pub name: String,
}

impl PairingTemplate {
    /// The template for listeners bound to `quic` and `https` addresses.
    /// `configured` hosts win; else the bound addresses, with every address
    /// of this machine standing in for an unspecified one (0.0.0.0, ::).
    pub fn new(
        configured: &[String],
        quic: &[SocketAddr],
        https: &[SocketAddr],
        fingerprint: Fingerprint,
        name: &str,
    ) -> PairingTemplate {
        let hosts = if configured.is_empty() {
            advertised_hosts(quic.iter().chain(https).map(SocketAddr::ip))
        } else {
            configured.to_vec()
        };
        PairingTemplate {
            hosts,
            quic_port: quic.first().map(SocketAddr::port),
            wss_port: https.first().map(SocketAddr::port),
            fingerprint,
            name: name.to_owned(),
        }
    }

    /// A pairing URI carrying `invite`.
    pub fn uri(&self, invite: Option<String>) -> PairingUri {
        PairingUri {
            hosts: self.hosts.clone(),
            quic_port: self.quic_port,
            wss_port: self.wss_port,
            fingerprint: self.fingerprint,
            invite,
            name: Some(self.name.clone()),
        }
    }
}

/// The addresses clients can use for listeners bound to `bound`: specific
/// addresses as they are, unspecified ones replaced by this machine's
/// non-loopback addresses (IPv4 first: home networks route it best).
fn advertised_hosts(bound: impl Iterator<Item = IpAddr>) -> Vec<String> {
    let mut hosts: Vec<IpAddr> = Vec::new();
    for ip in bound {
        if ip.is_unspecified() {
            let mut local: Vec<IpAddr> = if_addrs::get_if_addrs()
                .unwrap_or_default()
                .into_iter()
                .map(|i| i.ip())
                // Link-local IPv6 addresses need a zone to be usable.
                .filter(|ip| {
                    !ip.is_loopback()
                        && !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
                })
                .collect();
            local.sort_by_key(|ip| ip.is_ipv6());
            hosts.extend(local);
        } else {
            hosts.push(ip);
        }
    }
    let mut seen = Vec::new();
    hosts.retain(|ip| {
        let new = !seen.contains(ip);
        seen.push(*ip);
        new
    });
    hosts.into_iter().map(|ip| ip.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_addresses_are_listed_as_bound_and_configured_hosts_win() {
        let fp = Fingerprint::of_spki(b"k");
        let quic = ["127.0.0.1:4433".parse().unwrap()];
        let https = ["127.0.0.1:8443".parse().unwrap()];
        let t = PairingTemplate::new(&[], &quic, &https, fp, "box");
        assert_eq!(t.hosts, ["127.0.0.1"]);
        assert_eq!((t.quic_port, t.wss_port), (Some(4433), Some(8443)));
        let uri = t.uri(Some("tok".into()));
        assert_eq!(uri.server_urls(), ["quic://127.0.0.1:4433", "wss://127.0.0.1:8443"]);
        let t = PairingTemplate::new(&["imbox.local".into()], &quic, &https, fp, "box");
        assert_eq!(t.hosts, ["imbox.local"]);
    }

    #[test]
    fn unspecified_addresses_become_this_machines_addresses() {
        let hosts = advertised_hosts(["0.0.0.0".parse().unwrap()].into_iter());
        assert!(hosts.iter().all(|h| h != "0.0.0.0" && h != "127.0.0.1"));
    }
}
