//! Where a URL a user names may lead: the addresses its host resolves to, and whether each is
//! on the public internet. Webhook deliveries and imports from a URL connect only to
//! addresses checked here (unless an operator allows private ones), pinned for the
//! connection, so a DNS answer that changes in between cannot send them elsewhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host of `url` to resolve (an IPv6 literal without its brackets).
pub fn host(url: &url::Url) -> String {
    match url.host() {
        Some(url::Host::Ipv6(address)) => address.to_string(),
        Some(host) => host.to_string(),
        None => String::new(),
    }
}

/// The port of `url`, the scheme's default when none is written.
pub fn port(url: &url::Url) -> u16 {
    url.port_or_known_default().unwrap_or(80)
}

/// The host of `url` as written, when it is an address rather than a name.
#[cfg_attr(not(feature = "resolve"), allow(dead_code))]
fn ip_literal(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(address) => Some(IpAddr::V4(address)),
        url::Host::Ipv6(address) => Some(IpAddr::V6(address)),
        url::Host::Domain(_) => None,
    }
}

/// True for an address on the public internet: not loopback, private, shared (carrier NAT),
/// link-local (cloud metadata services live there), multicast, reserved or unspecified, in
/// either IPv4 or IPv6, including IPv4 addresses written inside IPv6 ones.
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_multicast()
        || address.is_broadcast()
        || address.is_documentation()
        || a == 0
        // 100.64.0.0/10: shared address space (carrier-grade NAT), internal by design.
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24: protocol assignments.
        || (a == 192 && b == 0 && c == 0)
        // 198.18.0.0/15: benchmarking.
        || (a == 198 && (b == 18 || b == 19))
        // 240.0.0.0/4: reserved.
        || a >= 240)
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    if let Some(v4) = address.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = address.segments();
    // 64:ff9b::/96 (well-known NAT64) and 2002::/16 (6to4) carry an IPv4 address that is what
    // is reached.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    if segments[0] == 0x2002 {
        let [a, b] = segments[1].to_be_bytes();
        let [c, d] = segments[2].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    // Only global unicast, 2000::/3, is public. Outside it: ::/8 (IPv4-compatible and
    // -translated forms), 64:ff9b:1::/48 (local-use NAT64, RFC 8215, which reaches whatever
    // its operator maps), 100::/64 (discard), fc00::/7 (unique local; fd00:ec2::254 is a
    // cloud metadata address), fe80::/10 and fec0::/10, ff00::/8 (multicast), and the
    // rest not allocated.
    let global_unicast = (segments[0] & 0xe000) == 0x2000;
    global_unicast
        // 2001::/23: IETF protocol assignments, Teredo (2001::/32, which tunnels to an IPv4
        // address of its own choosing) and benchmarking among them.
        && !(segments[0] == 0x2001 && segments[1] < 0x0200)
        // 2001:db8::/32 and 3fff::/20: documentation.
        && !(segments[0] == 0x2001 && segments[1] == 0x0db8)
        && (segments[0] & 0xfff0) != 0x3ff0
}

/// Why a URL's host may not be reached. Both read alike, and neither names an address: told
/// apart, they would tell a user which internal names exist and where they point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error("{host} does not resolve to a public address")]
    Unresolved { host: String },
    #[error("{host} does not resolve to a public address")]
    Private { host: String, address: IpAddr },
}

/// How long a name may take to resolve.
#[cfg(feature = "resolve")]
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The addresses `url` reaches now, all of them public unless `allow_private`.
#[cfg(feature = "resolve")]
pub async fn resolve(
    url: &url::Url,
    allow_private: bool,
) -> Result<Vec<std::net::SocketAddr>, Unreachable> {
    let host = host(url);
    let port = port(url);
    let addresses: Vec<std::net::SocketAddr> = match ip_literal(url) {
        Some(address) => vec![std::net::SocketAddr::new(address, port)],
        None => {
            let lookup = tokio::net::lookup_host((host.as_str(), port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(_)) | Err(_) => Vec::new(),
            }
        }
    };
    if addresses.is_empty() {
        return Err(Unreachable::Unresolved { host });
    }
    if !allow_private && let Some(private) = addresses.iter().find(|a| !is_public(a.ip())) {
        return Err(Unreachable::Private {
            host,
            address: private.ip(),
        });
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_hosts_are_read_as_addresses() {
        let v6 = url::Url::parse("https://[::1]:9000/x").unwrap();
        assert_eq!(host(&v6), "::1");
        assert_eq!(port(&v6), 9000);
        assert_eq!(ip_literal(&v6), Some("::1".parse().unwrap()));
        let named = url::Url::parse("https://example.com/x").unwrap();
        assert_eq!((host(&named).as_str(), port(&named)), ("example.com", 443));
        assert_eq!(ip_literal(&named), None);
    }
}
