//! Listen addresses in Go's `host:port` form, as `http.addr` takes them.

use std::fmt;
use std::net::Ipv6Addr;

/// Where to listen: `host:port`, `[v6]:port`, or `:port` for every interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// `None`: every interface, as Go's `:5000` (bind `[::]`, which on Linux
    /// also takes IPv4, or `0.0.0.0`). An IPv6 address is kept without its
    /// brackets; a name is resolved by whoever binds.
    pub host: Option<String>,
    /// `0` asks the system for a free port.
    pub port: u16,
}

impl ListenAddr {
    /// Splits `text` as Go's `net.SplitHostPort` does, with the port a number.
    pub fn parse(text: &str) -> Result<ListenAddr, String> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: missing `]` after the IPv6 address"))?;
            let zoneless = host.split_once('%').map_or(host, |(ip, _)| ip);
            if zoneless.parse::<Ipv6Addr>().is_err() {
                return Err(format!("{text:?}: `{host}` is not an IPv6 address"));
            }
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("{text:?}: expected `:port` after `]`"))?;
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| format!("{text:?}: missing port, e.g. `:5000` or `localhost:5000`"))?;
            if host.contains(':') {
                return Err(format!(
                    "{text:?}: too many colons; write an IPv6 address in brackets, e.g. `[::1]:5000`"
                ));
            }
            (host, port)
        };
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("{text:?}: `{host}` is not a host name or address"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| format!("{text:?}: the port must be a number from 0 to 65535"))?;
        let host = (!host.is_empty()).then(|| host.to_owned());
        Ok(ListenAddr { host, port })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.host {
            None => write!(f, ":{}", self.port),
            Some(host) if host.contains(':') => write!(f, "[{host}]:{}", self.port),
            Some(host) => write!(f, "{host}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: Option<&str>, port: u16) -> ListenAddr {
        ListenAddr {
            host: host.map(Into::into),
            port,
        }
    }

    #[test]
    fn go_forms_parse() {
        for (text, want) in [
            (":5000", addr(None, 5000)),
            ("127.0.0.1:5000", addr(Some("127.0.0.1"), 5000)),
            ("localhost:5001", addr(Some("localhost"), 5001)),
            ("[::1]:5000", addr(Some("::1"), 5000)),
            ("[::]:443", addr(Some("::"), 443)),
            ("[fe80::1%eth0]:80", addr(Some("fe80::1%eth0"), 80)),
            ("0.0.0.0:0", addr(Some("0.0.0.0"), 0)),
        ] {
            let got = ListenAddr::parse(text).unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), text);
        }
    }

    #[test]
    fn bad_forms_say_why() {
        for (text, why) in [
            ("5000", "missing port"),
            ("localhost", "missing port"),
            ("::1:5000", "too many colons"),
            ("[::1:5000", "missing `]`"),
            ("[::1]5000", "expected `:port`"),
            ("[nothost]:1", "not an IPv6 address"),
            (":http", "port must be a number"),
            (":70000", "port must be a number"),
            (":+50", "port must be a number"),
            ("localhost:", "port must be a number"),
            ("a b:1", "not a host name"),
        ] {
            let err = ListenAddr::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
