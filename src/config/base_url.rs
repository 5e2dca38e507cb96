//! The transport rule every outgoing HTTP client follows: secrets travel over TLS, except to
//! this machine (the simulators and tests run on loopback).

use std::net::IpAddr;

use url::Url;

/// Checks the rule that a secret (the admin key, a directory token) only ever travels over TLS, except to this machine.
pub fn check_base_url(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err("must be https unless the host is loopback".to_owned()),
        other => Err(format!("unsupported scheme {other:?}: use https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}
