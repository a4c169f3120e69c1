//! Who is the client? The TCP peer, unless the peer is one of our own proxies: only then are
//! `Forwarded` / `X-Forwarded-For` believed, and only the hops our proxies appended. Anyone can
//! send those headers; believing them from an untrusted peer would let an attacker pick a new
//! identity per request and walk straight past the per-IP limit.
//!
//! The chain is read from the right (the hop nearest to us) and trusted proxies are skipped;
//! the first address that is not one of ours is the client. Pure, bounded work per request.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Hops looked at, from the right. A longer chain is not more believable, only more work.
const MAX_HOPS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses `TRUSTED_PROXIES`: comma-separated addresses or CIDR blocks.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(item.to_string()),
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, seen on dual-stack sockets) is the IPv4 client.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Parses one hop: `1.2.3.4`, `1.2.3.4:567`, `[2001:db8::1]:567`, `2001:db8::1`, quoted or not.
fn hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = raw.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok().map(canonical);
    }
    let (host, _port) = raw.rsplit_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The `for=` values of every `Forwarded` header, in order.
fn forwarded_hops(headers: &HeaderMap) -> Vec<&str> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            for pair in element.split(';') {
                if let Some((k, v)) = pair.split_once('=')
                    && k.trim().eq_ignore_ascii_case("for")
                {
                    hops.push(v);
                }
            }
        }
    }
    hops
}

fn x_forwarded_for_hops(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect()
}

/// The address the per-IP limit applies to.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    // RFC 7239's header when a proxy sends it, the de-facto one otherwise.
    let mut chain = forwarded_hops(headers);
    if chain.is_empty() {
        chain = x_forwarded_for_hops(headers);
    }
    let mut nearest_trusted = peer;
    for raw in chain.iter().rev().take(MAX_HOPS) {
        match hop(raw) {
            Some(ip) if trusted.contains(ip) => nearest_trusted = ip,
            Some(ip) => return ip,
            // "unknown" or an obfuscated id: the last proxy we trust is the best we know.
            None => return nearest_trusted,
        }
    }
    nearest_trusted
}

/// The limit key of an address. IPv6 is limited per /64, the block one subscriber typically
/// gets: per address, an attacker would rotate through 2^64 identities for free.
pub fn limit_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap_or_default();
        let h = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &trusted),
            ip("203.0.113.9")
        );
        // No trusted proxies configured at all: the same.
        let none = TrustedProxies::default();
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &none), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_chain_is_read_from_the_right() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap_or_default();
        // The client forged "6.6.6.6"; our proxies appended the real client, then themselves.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 192.168.1.1")]);
        assert_eq!(client_ip(ip("10.1.2.3"), &h, &trusted), ip("198.51.100.7"));
        // Forwarded wins over X-Forwarded-For, with quoting and ports.
        let h = headers(&[
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https",
            ),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        assert_eq!(
            client_ip(ip("10.1.2.3"), &h, &trusted),
            ip("2001:db8:cafe::17")
        );
        // Only trusted hops: the leftmost one is as far as we can see.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.8.8.8")]);
        assert_eq!(client_ip(ip("10.1.2.3"), &h, &trusted), ip("10.9.9.9"));
        // An unusable hop stops the walk at the proxy that reported it.
        let h = headers(&[("forwarded", "for=unknown, for=10.7.7.7")]);
        assert_eq!(client_ip(ip("10.1.2.3"), &h, &trusted), ip("10.7.7.7"));
        // No header: the peer.
        assert_eq!(
            client_ip(ip("10.1.2.3"), &HeaderMap::new(), &trusted),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn hops_with_ports_and_mapped_addresses() {
        assert_eq!(hop("1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(hop("[::1]:80"), Some(ip("::1")));
        assert_eq!(hop(" ::ffff:1.2.3.4 "), Some(ip("1.2.3.4")));
        assert_eq!(hop("_hidden"), None);
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            limit_key(ip("2001:db8:1:2:bbbb::9")),
            limit_key(ip("2001:db8:1:2:aaaa::1"))
        );
        assert_eq!(limit_key(ip("::ffff:192.0.2.1")), "192.0.2.1");
    }

    #[test]
    fn bad_proxy_entries_are_reported() {
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/8, nope"),
            Err("nope".to_string())
        );
        assert!(TrustedProxies::parse("").is_ok_and(|t| t.is_empty()));
    }
}
