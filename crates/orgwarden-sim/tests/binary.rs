//! The `orgwarden-sim` binary on its own: it starts, says where it listens, and answers an
//! authenticated request over TCP (and refuses an unauthenticated one).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn get(addr: &str, key: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).expect("connects to the simulator");
    let key_header = key
        .map(|k| format!("x-api-key: {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /v1/organizations/me HTTP/1.1\r\nHost: {addr}\r\nanthropic-version: 2023-06-01\r\n{key_header}Connection: close\r\n\r\n"
    )
    .expect("sends the request");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("reads the answer");
    answer
}

#[test]
fn serves_an_authenticated_request_over_tcp() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orgwarden-sim"))
        .args(["--listen", "127.0.0.1:0", "--members", "3", "--keys", "2"])
        .args(["--admin-key", "sk-ant-admin01-binary-test"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts orgwarden-sim");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first = lines
        .next()
        .expect("a first line")
        .expect("readable stdout");
    let addr = first
        .strip_prefix("Admin API simulator listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    let key_line = lines.next().expect("a second line").expect("readable");
    assert!(
        key_line.ends_with("sk-ant-admin01-binary-test"),
        "{key_line}"
    );

    let ok = get(&addr, Some("sk-ant-admin01-binary-test"));
    let refused = get(&addr, None);
    child.kill().expect("kills the simulator");
    child.wait().expect("reaps the simulator");

    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"type\":\"organization\""), "{ok}");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}

#[test]
fn help_names_the_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_orgwarden-sim"))
        .arg("--help")
        .output()
        .expect("runs orgwarden-sim --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--seed",
        "--members",
        "--admin-key",
        "--latency-ms",
        "--error-rate",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}
