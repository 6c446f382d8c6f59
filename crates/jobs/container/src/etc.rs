//! What a container's `/etc/hosts` and `/etc/resolv.conf` say: Docker's defaults,
//! `--add-host` (`HostConfig.ExtraHosts`), `--dns`, `--dns-search` and
//! `--dns-option`, with dockerd's checks and error texts.

use std::net::{IpAddr, Ipv4Addr};

use berth_api::container::HostConfig;
use berth_api::{ApiError, Result};

/// The value of `--add-host` that stands for the host (the default bridge's address).
const HOST_GATEWAY: &str = "host-gateway";

/// One `--add-host` entry, `name:ip` (or the CLI's newer `name=ip`; an IPv6
/// address keeps its colons): (name, ip or `host-gateway`).
pub(crate) fn parse_extra_host(s: &str) -> Result<(String, String)> {
    let (name, ip) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| ApiError::invalid(format!("bad format for add-host: {s:?}")))?;
    // The CLI sends IPv6 addresses in brackets.
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip != HOST_GATEWAY && ip.parse::<IpAddr>().is_err() {
        return Err(ApiError::invalid(format!(
            "invalid IP address in add-host: {ip:?}"
        )));
    }
    Ok((name.to_string(), ip.to_string()))
}

/// Checks a new container's host and DNS settings as dockerd does at create.
pub(crate) fn check(hc: &HostConfig) -> Result<()> {
    let (hosts, dns) = (HostConfig::list(&hc.extra_hosts), HostConfig::list(&hc.dns));
    for h in hosts {
        parse_extra_host(h)?;
    }
    for d in dns {
        if d.parse::<IpAddr>().is_err() {
            return Err(ApiError::invalid(format!(
                "IP address is not correctly formatted: {d}"
            )));
        }
    }
    let container_mode = hc.network_mode.starts_with("container:");
    if container_mode && !dns.is_empty() {
        return Err(ApiError::invalid(
            "conflicting options: dns and the network mode",
        ));
    }
    if container_mode && !hosts.is_empty() {
        return Err(ApiError::invalid(
            "conflicting options: custom host-to-IP mapping and the network mode",
        ));
    }
    Ok(())
}

/// `/etc/hosts`: Docker's defaults, the `--add-host` entries, then the container's
/// own name.
pub(crate) fn hosts(
    hostname: &str,
    own_ip: &str,
    hc: &HostConfig,
    host_gateway: Option<Ipv4Addr>,
    links: &[(String, String)],
) -> Result<String> {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for h in HostConfig::list(&hc.extra_hosts) {
        let (name, mut ip) = parse_extra_host(h)?;
        if ip == HOST_GATEWAY {
            ip = host_gateway
                .ok_or_else(|| ApiError::invalid("unable to derive the IP value for host-gateway"))?
                .to_string();
        }
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    // Legacy links' targets, after the extra hosts, as dockerd writes them.
    for (ip, names) in links {
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    out.push_str(&format!("{own_ip}\t{hostname}\n"));
    Ok(out)
}

/// `/etc/resolv.conf`. With the embedded DNS server (`embedded`: its address),
/// that is the only nameserver (`--dns` servers are where it forwards); otherwise
/// `--dns` replaces the host's nameservers (the host's loopback ones never reach a
/// container off the host's network). `--dns-search` and `--dns-option` replace
/// the host's search and options lines; a search of `.` means none.
pub(crate) fn resolv_conf(
    host: &str,
    embedded: Option<&[String]>,
    host_network: bool,
    hc: &HostConfig,
) -> String {
    let dns = HostConfig::list(&hc.dns);
    let search = HostConfig::list(&hc.dns_search);
    let options = HostConfig::list(&hc.dns_options);
    let lines = |p: &str| -> Vec<String> {
        host.lines()
            .filter(|l| l.split_whitespace().next() == Some(p))
            .map(str::to_string)
            .collect()
    };
    let nameservers: Vec<String> = match embedded {
        Some(servers) => servers.iter().map(|s| format!("nameserver {s}")).collect(),
        None if !dns.is_empty() => dns.iter().map(|s| format!("nameserver {s}")).collect(),
        None => lines("nameserver")
            .into_iter()
            .filter(|l| host_network || !(l.contains(" 127.") || l.contains(" ::1")))
            .collect(),
    };
    let search: Vec<String> = if search.is_empty() {
        lines("search").into_iter().chain(lines("domain")).collect()
    } else if search.iter().all(|s| s == ".") {
        Vec::new()
    } else {
        vec![format!("search {}", search.join(" "))]
    };
    let options: Vec<String> = if options.is_empty() {
        lines("options")
    } else {
        vec![format!("options {}", options.join(" "))]
    };
    nameservers
        .into_iter()
        .chain(search)
        .chain(options)
        .map(|l| l + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hc(v: serde_json::Value) -> HostConfig {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn add_host_entries_read_as_dockerd_reads_them() {
        assert_eq!(
            parse_extra_host("db:10.0.0.5").expect("ok"),
            ("db".into(), "10.0.0.5".into())
        );
        assert_eq!(
            parse_extra_host("db=10.0.0.5").expect("ok"),
            ("db".into(), "10.0.0.5".into())
        );
        assert_eq!(
            parse_extra_host("v6:fd00::1").expect("ok"),
            ("v6".into(), "fd00::1".into())
        );
        assert_eq!(
            parse_extra_host("v6=[fd00::1]").expect("ok"),
            ("v6".into(), "fd00::1".into())
        );
        assert_eq!(
            parse_extra_host("gw:host-gateway").expect("ok").1,
            "host-gateway"
        );
        let e = parse_extra_host("nocolon").expect_err("error");
        assert_eq!(e.message, "bad format for add-host: \"nocolon\"");
        let e = parse_extra_host("x:999.1.1.1").expect_err("error");
        assert_eq!(e.message, "invalid IP address in add-host: \"999.1.1.1\"");
        assert!(parse_extra_host(":1.2.3.4").is_err());
    }

    #[test]
    fn create_checks() {
        assert!(check(&hc(
            json!({"ExtraHosts": ["a:1.2.3.4"], "Dns": ["9.9.9.9"]})
        ))
        .is_ok());
        let e = check(&hc(json!({"Dns": ["nine"]}))).expect_err("error");
        assert_eq!(e.message, "IP address is not correctly formatted: nine");
        let e = check(&hc(
            json!({"NetworkMode": "container:x", "Dns": ["9.9.9.9"]}),
        ))
        .expect_err("error");
        assert_eq!(e.message, "conflicting options: dns and the network mode");
        assert!(check(&hc(
            json!({"NetworkMode": "container:x", "ExtraHosts": ["a:1.1.1.1"]})
        ))
        .is_err());
        assert!(check(&hc(
            json!({"NetworkMode": "host", "ExtraHosts": ["a:1.1.1.1"]})
        ))
        .is_ok());
    }

    #[test]
    fn hosts_file_has_extra_hosts_before_the_containers_own_name() {
        let hc = hc(json!({"ExtraHosts": ["db:10.0.0.5", "gw:host-gateway"]}));
        let h = hosts(
            "abc",
            "172.17.0.2",
            &hc,
            Some(Ipv4Addr::new(172, 17, 0, 1)),
            &[("172.17.0.9".into(), "db c9 dbname".into())],
        )
        .expect("ok");
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"), "{h}");
        assert!(
            h.ends_with(
                "10.0.0.5\tdb\n172.17.0.1\tgw\n172.17.0.9\tdb c9 dbname\n172.17.0.2\tabc\n"
            ),
            "{h}"
        );
        let e = hosts("abc", "1.1.1.1", &hc, None, &[]).expect_err("error");
        assert_eq!(e.message, "unable to derive the IP value for host-gateway");
    }

    #[test]
    fn resolv_conf_takes_dns_settings_over_the_hosts() {
        let host =
            "nameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch corp.example\noptions edns0\n";
        // Defaults: the host's, without loopback servers.
        assert_eq!(
            resolv_conf(host, None, false, &hc(json!({}))),
            "nameserver 10.1.1.1\nsearch corp.example\noptions edns0\n"
        );
        // On the host's network the loopback resolver works.
        assert!(
            resolv_conf(host, None, true, &hc(json!({}))).starts_with("nameserver 127.0.0.53\n")
        );
        let dns = hc(
            json!({"Dns": ["9.9.9.9", "1.1.1.1"], "DnsSearch": ["a.test", "b.test"], "DnsOptions": ["ndots:2", "timeout:1"]}),
        );
        assert_eq!(
            resolv_conf(host, None, false, &dns),
            "nameserver 9.9.9.9\nnameserver 1.1.1.1\nsearch a.test b.test\noptions ndots:2 timeout:1\n"
        );
        // With the embedded server, it is the only nameserver.
        let embedded = vec!["127.0.0.11".to_string()];
        assert_eq!(
            resolv_conf(host, Some(&embedded), false, &dns),
            "nameserver 127.0.0.11\nsearch a.test b.test\noptions ndots:2 timeout:1\n"
        );
        // A search of "." means none.
        let hc2 = hc(json!({"DnsSearch": ["."]}));
        assert_eq!(
            resolv_conf(host, None, false, &hc2),
            "nameserver 10.1.1.1\noptions edns0\n"
        );
    }
}
