//! JSON-RPC 1.0 as OVSDB uses it (RFC 7047 §4): message shapes and stream framing.
//!
//! OVSDB sends JSON-RPC messages back to back on a byte stream with no delimiter, so a reader
//! must find where each JSON object ends. [`Splitter`] does that incrementally, tracking
//! nesting and strings byte by byte, and enforces a maximum message size; anything that is
//! not a JSON object at the top level is a framing error and the connection must be closed.
//! Both the server and the client use it.

use serde_json::{json, Value};

/// Why a byte stream cannot be split into messages; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("unexpected byte 0x{0:02x} between JSON-RPC messages")]
    Garbage(u8),
    #[error("message exceeds the limit of {0} bytes")]
    TooLarge(usize),
}

/// Buffer capacity worth giving back once the data in it has been consumed.
const SHRINK_ABOVE: usize = 1 << 20;

/// Incremental splitter of a stream of concatenated JSON objects.
#[derive(Debug)]
pub struct Splitter {
    buf: Vec<u8>,
    /// Next byte to scan.
    pos: usize,
    /// Start of the current message, once its `{` has been seen.
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    max: usize,
}

impl Splitter {
    pub fn new(max_message_bytes: usize) -> Self {
        Splitter {
            buf: Vec::new(),
            pos: 0,
            start: None,
            depth: 0,
            in_string: false,
            escaped: false,
            max: max_message_bytes,
        }
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, if one has arrived.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            match self.start {
                None => {
                    if b.is_ascii_whitespace() {
                        self.pos += 1;
                        continue;
                    }
                    if b != b'{' {
                        return Err(FramingError::Garbage(b));
                    }
                    self.start = Some(self.pos);
                    self.depth = 1;
                }
                Some(start) => {
                    if self.in_string {
                        if self.escaped {
                            self.escaped = false;
                        } else if b == b'\\' {
                            self.escaped = true;
                        } else if b == b'"' {
                            self.in_string = false;
                        }
                    } else {
                        match b {
                            b'"' => self.in_string = true,
                            b'{' | b'[' => self.depth += 1,
                            b'}' | b']' => {
                                self.depth -= 1;
                                if self.depth == 0 {
                                    let msg = self.buf[start..=self.pos].to_vec();
                                    self.buf.drain(..=self.pos);
                                    // Do not keep a huge buffer around after a huge message.
                                    if self.buf.capacity() > SHRINK_ABOVE
                                        && self.buf.len() < SHRINK_ABOVE / 4
                                    {
                                        self.buf.shrink_to_fit();
                                    }
                                    self.pos = 0;
                                    self.start = None;
                                    return Ok(Some(msg));
                                }
                            }
                            _ => {}
                        }
                    }
                    if self.pos - start + 1 > self.max {
                        return Err(FramingError::TooLarge(self.max));
                    }
                }
            }
            self.pos += 1;
        }
        // Drop scanned whitespace so an idle connection does not accumulate it.
        if self.start.is_none() {
            self.buf.clear();
            self.pos = 0;
        }
        Ok(None)
    }
}

/// A parsed JSON-RPC message (RFC 7047 §4).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Request {
        method: String,
        params: Value,
        id: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        result: Value,
        error: Value,
        id: Value,
    },
}

impl Message {
    /// Classifies a JSON object as request, notification or response.
    pub fn from_json(v: Value) -> Result<Self, String> {
        let Value::Object(mut o) = v else {
            return Err("message is not a JSON object".into());
        };
        let id = o.remove("id").unwrap_or(Value::Null);
        if let Some(m) = o.remove("method") {
            let method = m.as_str().ok_or("\"method\" is not a string")?.to_string();
            // lib/jsonrpc.c `jsonrpc_msg_is_valid`: requests and notifications carry an array.
            let params = match o.remove("params") {
                Some(p @ Value::Array(_)) => p,
                Some(_) => return Err("\"params\" must be JSON array".into()),
                None if id.is_null() => return Err("notification must have \"params\"".into()),
                None => return Err("request must have \"params\"".into()),
            };
            return Ok(if id.is_null() {
                Message::Notification { method, params }
            } else {
                Message::Request { method, params, id }
            });
        }
        if o.contains_key("result") || o.contains_key("error") {
            return Ok(Message::Response {
                result: o.remove("result").unwrap_or(Value::Null),
                error: o.remove("error").unwrap_or(Value::Null),
                id,
            });
        }
        Err("message has neither \"method\" nor \"result\"/\"error\"".into())
    }

    pub fn to_json(&self) -> Value {
        match self {
            Message::Request { method, params, id } => {
                json!({"method": method, "params": params, "id": id})
            }
            Message::Notification { method, params } => {
                json!({"method": method, "params": params, "id": null})
            }
            Message::Response { result, error, id } => {
                json!({"result": result, "error": error, "id": id})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_concatenated_objects_across_chunks() {
        let mut s = Splitter::new(1024);
        s.push(br#" {"a": "}{\"", "b": [1, {"c": 2}]}{"x"#);
        assert_eq!(
            s.next_message().unwrap().unwrap(),
            br#"{"a": "}{\"", "b": [1, {"c": 2}]}"#.to_vec()
        );
        assert_eq!(s.next_message().unwrap(), None);
        s.push(br#"": 1}  "#);
        assert_eq!(s.next_message().unwrap().unwrap(), br#"{"x": 1}"#.to_vec());
        assert_eq!(s.next_message().unwrap(), None);
    }

    #[test]
    fn rejects_garbage_and_oversized() {
        let mut s = Splitter::new(1024);
        s.push(b"hello");
        assert_eq!(s.next_message(), Err(FramingError::Garbage(b'h')));
        let mut s = Splitter::new(8);
        s.push(br#"{"aaaaaaaaaaa": 1}"#);
        assert_eq!(s.next_message(), Err(FramingError::TooLarge(8)));
    }

    proptest::proptest! {
        /// However the stream is chunked, the same messages come out.
        #[test]
        fn any_chunking_yields_the_same_messages(values in proptest::collection::vec(proptest::collection::btree_map("[a-z\"\\\\{}\\[\\] ]{0,6}", 0i64..1000, 0..4), 1..6), cuts in proptest::collection::vec(0usize..400, 0..8)) {
            let msgs: Vec<Vec<u8>> = values.iter().map(|m| serde_json::to_vec(m).unwrap()).collect();
            let stream: Vec<u8> = msgs.iter().flat_map(|m| m.iter().copied().chain(*b" \n")).collect();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            points.push(stream.len());
            points.sort_unstable();
            let mut s = Splitter::new(1 << 20);
            let mut out = Vec::new();
            let mut prev = 0;
            for p in points {
                s.push(&stream[prev..p]);
                prev = p;
                while let Some(m) = s.next_message().unwrap() {
                    out.push(m);
                }
            }
            proptest::prop_assert_eq!(out, msgs);
        }

        /// Arbitrary bytes never panic the splitter.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut s = Splitter::new(256);
            s.push(&bytes);
            while let Ok(Some(_)) = s.next_message() {}
        }
    }

    #[test]
    fn classifies_messages() {
        let m = Message::from_json(json!({"method": "echo", "params": [], "id": 1})).unwrap();
        assert!(matches!(m, Message::Request { .. }));
        let n = Message::from_json(json!({"method": "update", "params": [], "id": null})).unwrap();
        assert!(matches!(n, Message::Notification { .. }));
        let r = Message::from_json(json!({"result": {}, "error": null, "id": 1})).unwrap();
        assert_eq!(Message::from_json(r.to_json()).unwrap(), r);
        assert!(Message::from_json(json!([1])).is_err());
    }
}
