//! The client's address behind load balancers: taken from `Forwarded` (RFC 7239) or
//! `X-Forwarded-For` only when the connection comes from a trusted proxy
//! (`--trusted-proxies`), otherwise the socket's own address. The per-IP rate limit and the
//! logs use it.
//!
//! The forwarding header is read from the right (the hop nearest to us) to the left,
//! skipping trusted proxies: the first address that is not one is the client. Anything left
//! of it was written by the client itself and is never believed. A value that is not an
//! address (`unknown`, an obfuscated name) stops the walk at the last trusted hop. With
//! `Forwarded` present, `X-Forwarded-For` is ignored.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::FORWARDED;
use ipnet::IpNet;

/// The address a request is attributed to, in every request's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// Most forwarding hops read from the right (a longer chain stops at the last one read).
const MAX_HOPS: usize = 32;

impl TrustedProxies {
    /// Trusts these networks.
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { nets }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that arrived from `peer` with `headers`.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddr {
        let mut client = canonical(peer.ip());
        if self.nets.is_empty() || !self.trusts(client) {
            return ClientAddr(client);
        }
        let forwarded = headers.get_all(FORWARDED);
        let hops: Vec<Option<IpAddr>> = if forwarded.iter().next().is_some() {
            forwarded
                .iter()
                .flat_map(|v| v.to_str().ok().map(forwarded_for).unwrap_or_default())
                .collect()
        } else {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .flat_map(|v| {
                    v.to_str()
                        .map(|s| s.split(',').map(|a| parse_addr(a.trim())).collect())
                        .unwrap_or_else(|_| vec![None])
                })
                .collect()
        };
        for hop in hops.into_iter().rev().take(MAX_HOPS) {
            let Some(ip) = hop else { break };
            client = canonical(ip);
            if !self.trusts(client) {
                break;
            }
        }
        ClientAddr(client)
    }
}

/// An IPv4 address mapped into IPv6 is the IPv4 address (dual-stack sockets report them so).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The `for=` addresses of one `Forwarded` header value, in order (`None` where a hop has
/// no usable address).
fn forwarded_for(value: &str) -> Vec<Option<IpAddr>> {
    value
        .split(',')
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, v)| parse_addr(v.trim().trim_matches('"')))
        })
        .collect()
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`
/// or `[2001:db8::1]:4711`.
fn parse_addr(value: &str) -> Option<IpAddr> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .and_then(|v| v.parse().ok())
}

/// A `--trusted-proxies` entry: a network (`10.0.0.0/8`, `fd00::/8`) or one address.
pub fn parse_net(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| {
            format!("{value:?} is not an address or network (e.g. 10.0.0.0/8, 127.0.0.1, fd00::/8)")
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| parse_net(n).unwrap()).collect())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn client(trusted: &TrustedProxies, peer: &str, pairs: &[(&str, &str)]) -> String {
        trusted
            .client(peer.parse().unwrap(), &headers(pairs))
            .0
            .to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let xff = [("x-forwarded-for", "1.2.3.4")];
        assert_eq!(client(&trusted, "192.0.2.9:5000", &xff), "192.0.2.9");
        assert_eq!(
            client(&TrustedProxies::default(), "10.0.0.1:5000", &xff),
            "10.0.0.1",
            "nothing trusted: the socket"
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "127.0.0.1"]);
        // The client forged the leftmost entry; the balancer appended the real address.
        let xff = [("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")];
        assert_eq!(client(&trusted, "127.0.0.1:5000", &xff), "198.51.100.7");
        // Split over two header lines, in order.
        let two = [
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ];
        assert_eq!(client(&trusted, "127.0.0.1:5000", &two), "198.51.100.7");
        // Only proxies: the farthest one.
        let all = [("x-forwarded-for", "10.2.2.2, 10.1.1.1")];
        assert_eq!(client(&trusted, "127.0.0.1:5000", &all), "10.2.2.2");
        // No header: the proxy itself.
        assert_eq!(client(&trusted, "127.0.0.1:5000", &[]), "127.0.0.1");
    }

    #[test]
    fn forwarded_wins_and_its_forms_parse() {
        let trusted = proxies(&["127.0.0.0/8"]);
        let both = [
            ("x-forwarded-for", "6.6.6.6"),
            (
                "forwarded",
                "for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
            ),
        ];
        assert_eq!(client(&trusted, "127.0.0.1:1", &both), "2001:db8:cafe::17");
        let port = [("forwarded", "for=\"192.0.2.60:8080\"")];
        assert_eq!(client(&trusted, "127.0.0.1:1", &port), "192.0.2.60");
    }

    #[test]
    fn an_unusable_hop_stops_at_the_last_trusted_one() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        let xff = [("x-forwarded-for", "198.51.100.7, unknown, 10.1.1.1")];
        assert_eq!(client(&trusted, "127.0.0.1:1", &xff), "10.1.1.1");
        let fwd = [("forwarded", "for=_hidden")];
        assert_eq!(client(&trusted, "127.0.0.1:1", &fwd), "127.0.0.1");
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let trusted = proxies(&["127.0.0.1"]);
        let xff = [("x-forwarded-for", "198.51.100.7")];
        assert_eq!(
            client(&trusted, "[::ffff:127.0.0.1]:1", &xff),
            "198.51.100.7"
        );
    }

    #[test]
    fn networks_parse_or_say_what_they_should_be() {
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net(" ::1 ").unwrap().to_string(), "::1/128");
        assert!(
            parse_net("10.0.0.0/33")
                .unwrap_err()
                .contains("not an address")
        );
        assert!(parse_net("proxy.local").is_err());
    }
}
