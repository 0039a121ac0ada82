//! `/metrics` as an HTTP server meets probes and scrapers (issue 16 item
//! 13): GET gives the text with its length, HEAD the same head without a
//! body (RFC 9110 §9.3.2), another method 405 with `Allow`, another path
//! 404; `switchyard_build_info` names the version.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::Node;

fn request(node: &Node, head: &str) -> String {
    let mut s = TcpStream::connect(&node.metrics).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn get_head_and_other_methods() {
    let node = Node::start("[[switch]]\nname = \"ls1\"\n");
    let get = request(&node, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = get.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(body.contains("switchyard_build_info{dpdk=\""), "{body}");
    assert!(
        body.contains(&format!("version=\"{version}\"}} 1")),
        "{body}"
    );

    let head_only = request(&node, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (h, rest) = head_only.split_once("\r\n\r\n").unwrap();
    assert!(h.starts_with("HTTP/1.1 200 OK"), "{h}");
    assert!(h.contains("Content-Length: "), "{h}");
    assert!(rest.is_empty(), "HEAD got a body: {rest:?}");

    let post = request(&node, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(
        post.starts_with("HTTP/1.1 405 Method Not Allowed"),
        "{post}"
    );
    assert!(post.contains("Allow: GET, HEAD"), "{post}");
    let other = request(&node, "GET /nothing HTTP/1.1\r\n\r\n");
    assert!(other.starts_with("HTTP/1.1 404 Not Found"), "{other}");
}
