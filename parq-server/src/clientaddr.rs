//! The client's address behind reverse proxies: `Forwarded` (RFC 7239) and `X-Forwarded-For`,
//! believed only from the proxies of `trusted_proxies`.
//!
//! A proxy appends the address of its own peer to the header, so the chain is read from the
//! right: the peer of this server first, then each hop it reported, skipping every hop that is a
//! trusted proxy. The first address that is not a trusted proxy is the client's; everything to
//! its left was written by that client (or by anyone before it) and is never read. When every
//! hop is trusted, the leftmost one is the client.
//!
//! Nothing a client sends can make it choose its address:
//! - a peer that is not a trusted proxy is the client, whatever its headers say;
//! - an entry that cannot be read (garbage, `unknown`, an obfuscated `_name`) ends the walk at
//!   the trusted hop that reported it: that proxy's address is the client's then;
//! - a trusted proxy writes one of the two headers, and passes the other one on as the client
//!   sent it; so when both are present and name different clients, neither is believed and the
//!   peer's address is used (configure the proxy to set one and clear the other).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

/// IP addresses and networks (CIDR) of the reverse proxies whose forwarding headers are
/// believed. Empty: no proxy is trusted, and the client is the peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4
/// peers) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl TrustedProxies {
    /// Parses a comma-separated list of IP addresses and CIDR networks (`10.0.0.0/8`,
    /// `::1`, `fd00::/8`); blanks are ignored. The error names the entry that is wrong.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (addr, prefix) = match entry.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (entry, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{entry:?} is not an IP address or a CIDR network like 10.0.0.0/8"))?;
            let addr = canonical(addr);
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("{entry:?}: the prefix length must be 0 to {max}"))?,
            };
            nets.push(Net { addr, prefix });
        }
        Ok(Self { nets })
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client's address, from the peer's and the forwarding headers (see the
    /// [module docs](self)).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let forwarded = chain(headers, "forwarded", forwarded_for);
        let x_forwarded = chain(headers, "x-forwarded-for", x_forwarded_for);
        match (forwarded, x_forwarded) {
            (None, None) => peer,
            (Some(c), None) | (None, Some(c)) => self.walk(peer, &c),
            (Some(a), Some(b)) => {
                let (a, b) = (self.walk(peer, &a), self.walk(peer, &b));
                if a == b { a } else { peer }
            }
        }
    }

    /// Walks `hops` (left to right as sent; `None` for an entry that cannot be read) from the
    /// right, starting at the trusted `peer`.
    fn walk(&self, peer: IpAddr, hops: &[Option<IpAddr>]) -> IpAddr {
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = *hop else { return client };
            client = canonical(ip);
            if !self.contains(client) {
                return client;
            }
        }
        client
    }
}

/// Every value of `name`, joined as one list (a header may be sent several times), split at
/// commas and read with `entry`; `None` when the header is absent. A value that is not text is
/// one unreadable entry.
fn chain(headers: &HeaderMap, name: &str, entry: fn(&str) -> Option<IpAddr>) -> Option<Vec<Option<IpAddr>>> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for v in values {
        match v.to_str() {
            Ok(text) => hops.extend(split_elements(text).into_iter().map(|e| entry(e.trim()))),
            Err(_) => hops.push(None),
        }
    }
    Some(hops)
}

/// Splits at the commas that are not inside a quoted string.
fn split_elements(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// One `X-Forwarded-For` entry: an IP address, perhaps with a port (`1.2.3.4:5`, `[::1]:5`).
fn x_forwarded_for(entry: &str) -> Option<IpAddr> {
    node(entry)
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in element.split(';') {
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(rest) => rest.strip_suffix('"')?,
                None => value,
            };
            found = Some(node(value)?);
        }
    }
    found
}

/// A node: an IPv4 address, a bracketed IPv6 address, either with an optional port, or a bare
/// IPv6 address. `unknown` and obfuscated identifiers (`_hidden`) are not addresses.
fn node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if text.is_empty() || text.len() > 64 {
        return None;
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(port)) {
            return None;
        }
        return ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let (ip, p) = text.rsplit_once(':')?;
    if !port(p) {
        return None;
    }
    ip.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// A port as `Forwarded` allows it: digits, or an obfuscated `_name`.
fn port(p: &str) -> bool {
    !p.is_empty() && (p.parse::<u16>().is_ok() || p.starts_with('_'))
}

/// The address of the TCP peer, as the server accepted it (`0.0.0.0` when unknown, as in a
/// test that calls the router without a socket).
pub fn peer(extensions: &Extensions) -> IpAddr {
    extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The client's address, put on each request by the outermost middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn the_list_takes_addresses_and_networks_and_names_a_wrong_entry() {
        let t = TrustedProxies::parse(" 10.0.0.0/8, 127.0.0.1 ,fd00::/8,, ::1").unwrap();
        for yes in ["10.1.2.3", "127.0.0.1", "fd12::1", "::1", "::ffff:10.0.0.1"] {
            assert!(t.contains(ip(yes)), "{yes}");
        }
        for no in ["11.0.0.1", "127.0.0.2", "fe80::1", "::2"] {
            assert!(!t.contains(ip(no)), "{no}");
        }
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(!TrustedProxies::parse("0.0.0.0/0").unwrap().contains(ip("::2")));
        for bad in ["10.0.0.0/33", "proxy.local", "10.0.0.0/", "::1/129", "1.2.3.4/-1", "10.0.0.0/8/8"] {
            let e = TrustedProxies::parse(bad).unwrap_err();
            assert!(e.contains(bad.split('/').next().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let none = TrustedProxies::default();
        let h = headers(&[("x-forwarded-for", b"1.1.1.1"), ("forwarded", b"for=2.2.2.2")]);
        assert_eq!(none.client(ip("9.9.9.9"), &h), ip("9.9.9.9"));
        let t = TrustedProxies::parse("10.0.0.1").unwrap();
        assert_eq!(t.client(ip("9.9.9.9"), &h), ip("9.9.9.9"));
    }

    #[test]
    fn the_chain_is_walked_from_the_right_skipping_trusted_hops() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.1");
        // The client forged the first entry; the outer proxy appended its real peer.
        let h = headers(&[("x-forwarded-for", b"6.6.6.6, 203.0.113.7, 10.0.0.9")]);
        assert_eq!(t.client(peer, &h), ip("203.0.113.7"));
        // Several header lines are one list.
        let h = headers(&[("x-forwarded-for", b"6.6.6.6"), ("x-forwarded-for", b"203.0.113.8:4711")]);
        assert_eq!(t.client(peer, &h), ip("203.0.113.8"));
        // Every hop trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", b"10.0.0.7, 10.0.0.9")]);
        assert_eq!(t.client(peer, &h), ip("10.0.0.7"));
        // No header: the proxy itself.
        assert_eq!(t.client(peer, &HeaderMap::new()), peer);
        let h = headers(&[(
            "forwarded",
            b"for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.9;by=10.0.0.1",
        )]);
        assert_eq!(t.client(peer, &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", b"For=\"198.51.100.17:_port\"")]);
        assert_eq!(t.client(peer, &h), ip("198.51.100.17"));
    }

    #[test]
    fn unreadable_entries_stop_at_the_trusted_hop_that_reported_them() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let peer = ip("10.0.0.1");
        for bad in [
            &b"nonsense"[..],
            b"",
            b",",
            b"1.2.3.4.5",
            b"unknown",
            b"_hidden",
            b"1.2.3.4:99999",
            b"[::1",
            b"[::1]x",
            b"\xff\xfe",
            b"1.2.3.4, 10.0.0.3, garbage",
        ] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(t.client(peer, &h), peer, "{:?}", String::from_utf8_lossy(bad));
        }
        // Garbage left of the client is never read.
        let h = headers(&[("x-forwarded-for", b"garbage, 203.0.113.7")]);
        assert_eq!(t.client(peer, &h), ip("203.0.113.7"));
        // A trusted hop reported garbage: that hop is the client.
        let h = headers(&[("x-forwarded-for", b"garbage, 10.0.0.5")]);
        assert_eq!(t.client(peer, &h), ip("10.0.0.5"));
        for bad in [
            &b"for=unknown"[..],
            b"for=_secret",
            b"for",
            b"for=\"1.2.3.4",
            b"for=1.2.3.4;for=5.6.7.8",
            b"proto=https",
            b"for=\"[::1]:80\",for=\"a,b\"",
        ] {
            let h = headers(&[("forwarded", bad)]);
            assert_eq!(t.client(peer, &h), peer, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn two_headers_that_disagree_are_neither_believed() {
        let t = TrustedProxies::parse("127.0.0.1").unwrap();
        let peer = ip("127.0.0.1");
        // The proxy set X-Forwarded-For; the client's own Forwarded came through untouched.
        let h = headers(&[("x-forwarded-for", b"127.0.0.2"), ("forwarded", b"for=127.0.0.9")]);
        assert_eq!(t.client(peer, &h), peer);
        let h = headers(&[("x-forwarded-for", b"127.0.0.2"), ("forwarded", b"for=\"127.0.0.2:5000\"")]);
        assert_eq!(t.client(peer, &h), ip("127.0.0.2"));
        // A mapped IPv4 peer is its IPv4 address.
        assert_eq!(
            t.client(ip("::ffff:127.0.0.1"), &headers(&[("x-forwarded-for", b"127.0.0.3")])),
            ip("127.0.0.3")
        );
    }
}
