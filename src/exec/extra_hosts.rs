//! `--add-host`: names the RUN steps' `/etc/hosts` maps besides the
//! loopback ones, as `docker build --add-host` adds them. They are part of
//! the step (its cache key), never of the image: `/etc/hosts` is a bind
//! mount of the sandbox, not a file of the layer.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One `--add-host` entry: a host name and the address it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    /// The host name (one per entry, without spaces).
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
}

/// Why an `--add-host` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtraHostError {
    /// Neither `HOST:IP` nor `HOST=IP`, or an empty or spaced name.
    #[error("--add-host {0:?}: expected HOST:IP or HOST=IP")]
    Malformed(String),
    /// The address is not an IPv4 or IPv6 address.
    #[error("--add-host {value:?}: {ip:?} is not an IP address")]
    BadIp {
        /// The whole value.
        value: String,
        /// The address part.
        ip: String,
    },
    /// `host-gateway`, which only a daemon with a bridge network can resolve.
    #[error(
        "--add-host {0:?}: host-gateway is not supported: the gateway of a RUN step's network does not lead to the host (its 127.0.0.1 services are out of reach); use the host's address on another interface"
    )]
    HostGateway(String),
}

impl FromStr for ExtraHost {
    type Err = ExtraHostError;

    /// `HOST:IP` or `HOST=IP` (an IPv6 address may be in brackets), as
    /// Docker's CLI validates it: `=` is tried first, then the first `:`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let malformed = || ExtraHostError::Malformed(value.to_owned());
        let (name, ip) = value
            .split_once('=')
            .or_else(|| value.split_once(':'))
            .ok_or_else(malformed)?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(malformed());
        }
        if ip == "host-gateway" {
            return Err(ExtraHostError::HostGateway(value.to_owned()));
        }
        let bare = ip
            .strip_prefix('[')
            .and_then(|i| i.strip_suffix(']'))
            .unwrap_or(ip);
        let ip = bare.parse().map_err(|_| ExtraHostError::BadIp {
            value: value.to_owned(),
            ip: ip.to_owned(),
        })?;
        Ok(Self {
            name: name.to_owned(),
            ip,
        })
    }
}

impl fmt::Display for ExtraHost {
    /// The line `/etc/hosts` gets (without its newline).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\t{}", self.ip, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_docker_forms_and_ipv6_parse() {
        let host: ExtraHost = "db:10.0.0.7".parse().unwrap();
        assert_eq!(host.to_string(), "10.0.0.7\tdb");
        let host: ExtraHost = "db=10.0.0.8".parse().unwrap();
        assert_eq!(host.to_string(), "10.0.0.8\tdb");
        let host: ExtraHost = "v6:::1".parse().unwrap();
        assert_eq!(host.to_string(), "::1\tv6");
        let host: ExtraHost = "v6=[fe80::1]".parse().unwrap();
        assert_eq!(host.to_string(), "fe80::1\tv6");
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        assert!(matches!(
            "nocolon".parse::<ExtraHost>(),
            Err(ExtraHostError::Malformed(_))
        ));
        assert!(matches!(
            ":1.2.3.4".parse::<ExtraHost>(),
            Err(ExtraHostError::Malformed(_))
        ));
        assert!(matches!(
            "db:not-an-ip".parse::<ExtraHost>(),
            Err(ExtraHostError::BadIp { .. })
        ));
        let error = "gw:host-gateway".parse::<ExtraHost>().unwrap_err();
        assert!(error.to_string().contains("not supported"), "{error}");
    }
}
