//! Address arithmetic: Docker's default pools, choosing a free subnet, and handing
//! out addresses inside one.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

pub use ipnet::{Ipv4Net, Ipv6Net};

use crate::{Error, Result};

/// One `--default-address-pools` entry: subnets of `size` bits carved from `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub base: Ipv4Net,
    pub size: u8,
}

/// dockerd's default pools: 172.17–31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn default_pools() -> Vec<Pool> {
    let mut v: Vec<Pool> = (17..=31)
        .map(|b| Pool {
            base: Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap_or_default(),
            size: 16,
        })
        .collect();
    v.push(Pool {
        base: Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap_or_default(),
        size: 20,
    });
    v
}

/// Parses `base=10.10.0.0/16,size=24` (dockerd's flag and daemon.json form).
pub fn parse_pool(s: &str) -> Result<Pool> {
    let bad = || Error::Invalid(format!("invalid default address pool: {s}"));
    let (mut base, mut size) = (None, None);
    for kv in s.split(',') {
        match kv.split_once('=') {
            Some(("base", v)) => base = Some(v.parse::<Ipv4Net>().map_err(|_| bad())?),
            Some(("size", v)) => size = Some(v.parse::<u8>().map_err(|_| bad())?),
            _ => return Err(bad()),
        }
    }
    let base = base.ok_or_else(bad)?.trunc();
    let size = size.ok_or_else(bad)?;
    if size < base.prefix_len() || size > 30 {
        return Err(bad());
    }
    Ok(Pool { base, size })
}

/// An IPv6 `--default-address-pools` entry (`base=fd00:abcd::/48,size=64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool6 {
    pub base: Ipv6Net,
    pub size: u8,
}

/// Whether a pool entry is IPv6's (its base has a colon).
pub fn is_pool6(s: &str) -> bool {
    s.split(',')
        .any(|kv| kv.strip_prefix("base=").is_some_and(|b| b.contains(':')))
}

/// Parses an IPv6 pool entry, in the same form as [`parse_pool`].
pub fn parse_pool6(s: &str) -> Result<Pool6> {
    let bad = || Error::Invalid(format!("invalid default address pool: {s}"));
    let (mut base, mut size) = (None, None);
    for kv in s.split(',') {
        match kv.split_once('=') {
            Some(("base", v)) => base = Some(v.parse::<Ipv6Net>().map_err(|_| bad())?),
            Some(("size", v)) => size = Some(v.parse::<u8>().map_err(|_| bad())?),
            _ => return Err(bad()),
        }
    }
    let base = base.ok_or_else(bad)?.trunc();
    let size = size.ok_or_else(bad)?;
    if size < base.prefix_len() || size > 124 {
        return Err(bad());
    }
    Ok(Pool6 { base, size })
}

/// The first IPv6 subnet from `pools` that overlaps nothing in `used`
/// (looking at the first 65536 of each pool).
pub fn pick6(pools: &[Pool6], used: &[Ipv6Net]) -> Option<Ipv6Net> {
    pools.iter().find_map(|p| {
        p.base
            .subnets(p.size)
            .ok()?
            .take(65536)
            .find(|s| !used.iter().any(|u| overlaps6(s, u)))
    })
}

pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first subnet from `pools` that overlaps nothing in `used`.
pub fn pick(pools: &[Pool], used: &[Ipv4Net]) -> Option<Ipv4Net> {
    pools.iter().find_map(|p| {
        p.base
            .subnets(p.size)
            .ok()?
            .find(|s| !used.iter().any(|u| overlaps(s, u)))
    })
}

/// The first host address of a subnet: dockerd's default gateway.
pub fn first_host(net: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(1))
}

/// Hands out the lowest free address of `range` (itself inside `subnet`), never
/// the network or broadcast address, nor anything in `taken`.
pub fn allocate(
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    taken: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let r = range.unwrap_or(subnet);
    r.hosts().find(|a| {
        *a != subnet.network()
            && *a != subnet.broadcast()
            && subnet.contains(a)
            && !taken.contains(a)
    })
}

/// The first address of an IPv6 subnet after its (anycast) network address:
/// the default gateway, as dockerd picks it.
pub fn first_host6(net: &Ipv6Net) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from(u128::from(net.network()).wrapping_add(1))
}

/// The lowest free address of an IPv6 subnet (past its network address),
/// searching the first 65536 of them.
pub fn allocate6(
    subnet: &Ipv6Net,
    taken: &BTreeSet<std::net::Ipv6Addr>,
) -> Option<std::net::Ipv6Addr> {
    let base = u128::from(subnet.network());
    let size = 1u128
        .checked_shl(128 - u32::from(subnet.prefix_len()))
        .unwrap_or(u128::MAX);
    (1..size.min(65536))
        .map(|i| std::net::Ipv6Addr::from(base + i))
        .find(|a| !taken.contains(a))
}

/// A unique local /64 (RFC 4193: `fd` and a random 40-bit global ID) for an
/// IPv6 network created without a subnet.
pub fn ula_subnet() -> Ipv6Net {
    let mut id = [0u8; 5];
    let _ = getrandom::getrandom(&mut id);
    let mut b = [0u8; 16];
    b[0] = 0xfd;
    b[1..6].copy_from_slice(&id);
    Ipv6Net::new(std::net::Ipv6Addr::from(b), 64).unwrap_or_default()
}

pub fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A MAC address derived from an IPv4 address, as dockerd does: `02:42` then the
/// address's four bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff` (or with dashes); None unless six hex pairs.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

pub fn mac_string(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:0a"),
            Some([2, 0x42, 0xac, 0x11, 0, 0x0a])
        );
        assert_eq!(
            parse_mac("02-42-AC-11-00-0A"),
            Some([2, 0x42, 0xac, 0x11, 0, 0x0a])
        );
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("zz:42:ac:11:00:0a"), None);
        assert_eq!(
            mac_string(&[2, 0x42, 0xac, 0x11, 0, 0x0a]),
            "02:42:ac:11:00:0a"
        );
    }

    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("net")
    }

    #[test]
    fn picks_the_first_free_pool_subnet() {
        let pools = default_pools();
        assert_eq!(pick(&pools, &[]), Some(net("172.17.0.0/16")));
        let used = [net("172.17.0.0/16"), net("172.18.5.0/24")];
        assert_eq!(pick(&pools, &used), Some(net("172.19.0.0/16")));
        let all: Vec<Ipv4Net> = (17..=31).map(|b| net(&format!("172.{b}.0.0/16"))).collect();
        assert_eq!(pick(&pools, &all), Some(net("192.168.0.0/20")));
        // A host route inside a pool subnet rules it out.
        let p = [parse_pool("base=10.9.0.0/16,size=24").expect("pool")];
        assert_eq!(pick(&p, &[net("10.9.0.0/25")]), Some(net("10.9.1.0/24")));
        assert_eq!(pick(&p, &[net("10.0.0.0/8")]), None);
    }

    #[test]
    fn pools_parse_like_dockerd() {
        assert_eq!(
            parse_pool("base=10.10.0.0/16,size=24").expect("ok"),
            Pool {
                base: net("10.10.0.0/16"),
                size: 24
            }
        );
        assert!(parse_pool("base=10.10.0.0/16").is_err());
        assert!(parse_pool("base=10.10.0.0/24,size=16").is_err());
        assert!(parse_pool("nope").is_err());
    }

    #[test]
    fn allocation_skips_gateway_taken_and_edges() {
        let s = net("10.1.2.0/29");
        let mut taken = BTreeSet::new();
        taken.insert(first_host(&s));
        assert_eq!(allocate(&s, None, &taken), Some(Ipv4Addr::new(10, 1, 2, 2)));
        for i in 2..=6 {
            taken.insert(Ipv4Addr::new(10, 1, 2, i));
        }
        assert_eq!(
            allocate(&s, None, &taken),
            None,
            "broadcast is never handed out"
        );
        let r = net("10.1.2.4/30");
        let taken = BTreeSet::new();
        assert_eq!(
            allocate(&s, Some(&r), &taken),
            Some(Ipv4Addr::new(10, 1, 2, 5))
        );
        assert_eq!(
            mac_string(&mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }
}
