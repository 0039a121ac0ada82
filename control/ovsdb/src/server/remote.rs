//! OVSDB remote addresses in ovsdb-server's notation.
//!
//! `tcp:IP:PORT` and `unix:PATH` name a peer to connect to; `ptcp:PORT[:IP]` and `punix:PATH`
//! name where to listen. The server accepts either form for listening (an active form means
//! "listen on exactly that address"), the client only the active ones.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// A TCP or unix-socket endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A remote string that is not in ovsdb-server's notation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not an OVSDB remote (expected tcp:IP:PORT, ptcp:PORT[:IP], unix:PATH or punix:PATH)")]
pub struct BadRemote(pub String);

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

impl FromStr for Remote {
    type Err = BadRemote;

    fn from_str(s: &str) -> Result<Self, BadRemote> {
        let bad = || BadRemote(s.to_string());
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "tcp" => {
                let (ip, port) = rest.rsplit_once(':').ok_or_else(bad)?;
                Ok(Remote::Tcp(SocketAddr::new(
                    parse_ip(ip).ok_or_else(bad)?,
                    port.parse().map_err(|_| bad())?,
                )))
            }
            "ptcp" => {
                let (port, ip) = match rest.split_once(':') {
                    Some((p, ip)) => (p, parse_ip(ip).ok_or_else(bad)?),
                    None => (rest, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                };
                Ok(Remote::Tcp(SocketAddr::new(
                    ip,
                    port.parse().map_err(|_| bad())?,
                )))
            }
            "unix" | "punix" if !rest.is_empty() => Ok(Remote::Unix(PathBuf::from(rest))),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Tcp(SocketAddr::V6(a)) => write!(f, "tcp:[{}]:{}", a.ip(), a.port()),
            Remote::Tcp(a) => write!(f, "tcp:{}:{}", a.ip(), a.port()),
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ovsdb_notation() {
        assert_eq!(
            "tcp:127.0.0.1:6641".parse::<Remote>().unwrap().to_string(),
            "tcp:127.0.0.1:6641"
        );
        assert_eq!(
            "ptcp:6642".parse::<Remote>().unwrap().to_string(),
            "tcp:0.0.0.0:6642"
        );
        assert_eq!(
            "ptcp:6642:127.0.0.1".parse::<Remote>().unwrap().to_string(),
            "tcp:127.0.0.1:6642"
        );
        assert_eq!(
            "tcp:[::1]:1".parse::<Remote>().unwrap().to_string(),
            "tcp:[::1]:1"
        );
        assert_eq!(
            "punix:/run/x.sock".parse::<Remote>().unwrap(),
            Remote::Unix("/run/x.sock".into())
        );
        for bad in ["tcp:1.2.3.4", "ssl:1.2.3.4:1", "unix:", "6641"] {
            assert!(bad.parse::<Remote>().is_err(), "{bad}");
        }
    }
}
