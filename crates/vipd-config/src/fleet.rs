//! `[fleet]` peer URLs (the section itself is in the model).

/// The host and port of a peer URL: `http://HOST:PORT` with an optional trailing `/` (no
/// path, no credentials, no TLS: vipd's listener serves plain HTTP). `HOST` is an address
/// or a name; an IPv6 address is written in brackets.
pub fn peer_authority(url: &str) -> Option<(&str, u16)> {
    let rest = url.strip_prefix("http://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let ok_host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
    };
    ok_host.then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::peer_authority;

    #[test]
    fn peer_urls() {
        assert_eq!(
            peer_authority("http://10.8.0.2:9180"),
            Some(("10.8.0.2", 9180))
        );
        assert_eq!(
            peer_authority("http://[2001:db8::2]:9180/"),
            Some(("[2001:db8::2]", 9180))
        );
        assert_eq!(peer_authority("http://d2.lb:9180"), Some(("d2.lb", 9180)));
        for bad in [
            "10.8.0.2:9180",
            "https://10.8.0.2:9180",
            "http://10.8.0.2",
            "http://10.8.0.2:0",
            "http://10.8.0.2:9180/status",
            "http://user@10.8.0.2:9180",
            "http://[2001:db8::zz]:9180",
            "http://:9180",
        ] {
            assert_eq!(peer_authority(bad), None, "{bad}");
        }
    }
}
