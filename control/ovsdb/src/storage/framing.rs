//! The byte framing of a database file: every record is `SYDB <length> <crc32>\n<json>\n`.
//! Writing frames a record; reading scans a file into its intact records up to the first bad
//! one, and counts the intact records after that one, which is what tells a torn final append
//! (nothing after it) from damage (intact records after it). Nothing here knows what a
//! record's JSON means: that is `records`'.

use serde_json::Value;

use super::BadRecord;

pub(super) const MAGIC: &str = "SYDB";

pub(super) fn frame(json: &[u8]) -> Vec<u8> {
    let crc = crc32fast::hash(json);
    let mut out = format!("{MAGIC} {} {crc:08x}\n", json.len()).into_bytes();
    out.extend_from_slice(json);
    out.push(b'\n');
    out
}

/// One intact record of a file.
pub(super) struct Record {
    pub(super) len: usize,
    pub(super) value: Value,
}

/// A file read as records: the intact ones up to the first bad one, and that one.
pub(super) struct Scan {
    pub(super) records: Vec<Record>,
    pub(super) bad: Option<BadRecord>,
}

pub(super) fn scan(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match parse_record(&bytes[pos..]) {
            Ok((len, value)) => {
                records.push(Record { len, value });
                pos += len;
            }
            Err(reason) => {
                let bad = BadRecord {
                    offset: pos as u64,
                    number: records.len() + 1,
                    reason,
                    intact_after: count_intact(&bytes[pos + 1..]),
                    bytes_to_end: (bytes.len() - pos) as u64,
                };
                return Scan {
                    records,
                    bad: Some(bad),
                };
            }
        }
    }
    Scan { records, bad: None }
}

/// Counts the intact records in `b`, resynchronising on the next `SYDB ` past anything that
/// does not parse (a damaged length field hides where the next record starts; a false match
/// inside a record's JSON fails its checksum).
pub(super) fn count_intact(b: &[u8]) -> usize {
    let magic = format!("{MAGIC} ");
    let mut n = 0;
    let mut pos = 0;
    while let Some(i) = b[pos..]
        .windows(magic.len())
        .position(|w| w == magic.as_bytes())
    {
        let start = pos + i;
        match parse_record(&b[start..]) {
            Ok((len, _)) => {
                n += 1;
                pos = start + len;
            }
            Err(_) => pos = start + 1,
        }
    }
    n
}

/// Parses one framed record at the start of `b`: returns its total length and JSON.
pub(super) fn parse_record(b: &[u8]) -> Result<(usize, Value), String> {
    let nl = b
        .iter()
        .take(64)
        .position(|&c| c == b'\n')
        .ok_or("missing record header")?;
    let header = std::str::from_utf8(&b[..nl]).map_err(|_| "header is not UTF-8")?;
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err(format!("bad magic in header {header:?}"));
    }
    let len: usize = parts
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("bad length")?;
    let crc = parts
        .next()
        .and_then(|c| u32::from_str_radix(c, 16).ok())
        .ok_or("bad checksum field")?;
    let start = nl + 1;
    let end = start.checked_add(len).ok_or("length overflow")?;
    if b.len() < end + 1 {
        return Err(format!(
            "record is truncated ({} of {} bytes)",
            b.len().saturating_sub(start),
            len + 1
        ));
    }
    let body = &b[start..end];
    if crc32fast::hash(body) != crc || b[end] != b'\n' {
        return Err("checksum mismatch".into());
    }
    let v = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    Ok((end + 1, v))
}
