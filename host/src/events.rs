//! TensorBoard event files: `events.out.tfevents.<time>.<host>`, a TFRecord stream of
//! `Event` protocol buffers carrying scalar summaries.
//!
//! Each record is `length (u64 LE) · masked CRC32C of length · data · masked CRC32C of
//! data`. The few protobuf fields TensorBoard needs are written by hand: `Event` {1:
//! wall_time double, 2: step int64, 3: file_version string, 5: summary}, `Summary` {1:
//! repeated value}, `Summary.Value` {1: tag string, 2: simple_value float}.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Appends events to one new file in a folder.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, starting with TF's version event.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("{}: cannot create", dir.display()), e))?;
        let now = wall_time();
        let mut name = format!("events.out.tfevents.{}.{}", now as u64, hostname());
        // Two writers in the same second (train then evaluate) must not share a file.
        let mut n = 1;
        while dir.join(&name).exists() {
            n += 1;
            name = format!("events.out.tfevents.{}.{}.{n}", now as u64, hostname());
        }
        let path = dir.join(name);
        let file = File::create(&path)
            .map_err(|e| Error::io(format!("{}: cannot create", path.display()), e))?;
        let mut writer = EventWriter {
            path,
            out: BufWriter::new(file),
        };
        let mut event = Vec::new();
        put_double(&mut event, 1, now);
        put_bytes(&mut event, 3, b"brain.Event:2");
        writer.record(&event)?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event holding `scalars` at `step`.
    pub fn scalars(&mut self, step: i64, scalars: &[(&str, f32)]) -> Result<()> {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            put_float(&mut v, 2, *value);
            put_bytes(&mut summary, 1, &v);
        }
        let mut event = Vec::new();
        put_double(&mut event, 1, wall_time());
        put_varint_field(&mut event, 2, step as u64);
        put_bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    /// Makes what was written visible to readers (TensorBoard reads files as they grow).
    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| Error::io(format!("{}: cannot write", self.path.display()), e))
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut frame = Vec::with_capacity(data.len() + 16);
        frame.extend_from_slice(&len);
        frame.extend_from_slice(&masked_crc(&len).to_le_bytes());
        frame.extend_from_slice(data);
        frame.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.out
            .write_all(&frame)
            .map_err(|e| Error::io(format!("{}: cannot write", self.path.display()), e))
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// TFRecord's CRC: CRC32C, rotated and offset so that CRCs of CRCs stay distinct.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_varint(out, u64::from(field << 3));
    put_varint(out, v);
}

fn put_double(out: &mut Vec<u8>, field: u32, v: f64) {
    put_varint(out, u64::from(field << 3 | 1));
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_float(out: &mut Vec<u8>, field: u32, v: f32) {
    put_varint(out, u64::from(field << 3 | 5));
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Every scalar in the event files of `dir` (files in name order, records in file order):
/// tag → (step, value) in the order written. Missing folder: none. A record cut short at
/// the end of a file (a writer still at work) ends that file; a bad CRC is an error.
pub fn read_scalars(dir: &Path) -> Result<std::collections::BTreeMap<String, Vec<(i64, f64)>>> {
    let mut out: std::collections::BTreeMap<String, Vec<(i64, f64)>> = Default::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("events.out.tfevents."))
        })
        .collect();
    files.sort();
    for path in files {
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::io(format!("{}: cannot read", path.display()), e))?;
        let bad = |m: &str| Error::Data(format!("{}: {m}", path.display()));
        let mut at = 0;
        while let Some(header) = bytes.get(at..at + 12) {
            let (len_bytes, crc) = header.split_at(8);
            if u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) != masked_crc(len_bytes) {
                return Err(bad("a record's length fails its CRC"));
            }
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default()) as usize;
            let Some(record) = bytes.get(at + 12..(at + 16).saturating_add(len)) else {
                break;
            };
            let (data, crc) = record.split_at(len);
            if u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) != masked_crc(data) {
                return Err(bad("a record fails its CRC"));
            }
            decode_event(data, &mut out).ok_or_else(|| bad("a record is not an Event"))?;
            at += 16 + len;
        }
    }
    Ok(out)
}

/// Adds an Event's scalar summaries to `out`; `None` if the bytes are not protobuf.
fn decode_event(
    data: &[u8],
    out: &mut std::collections::BTreeMap<String, Vec<(i64, f64)>>,
) -> Option<()> {
    let mut step = 0i64;
    let mut summary = None;
    for (field, value) in fields(data)? {
        match (field, value) {
            (2, Field::Varint(v)) => step = v as i64,
            (5, Field::Bytes(b)) => summary = Some(b),
            _ => {}
        }
    }
    for (field, value) in fields(summary.unwrap_or_default())? {
        let (1, Field::Bytes(v)) = (field, value) else {
            continue;
        };
        let (mut tag, mut simple) = (None, None);
        for (f, value) in fields(v)? {
            match (f, value) {
                (1, Field::Bytes(t)) => tag = Some(String::from_utf8_lossy(t).into_owned()),
                (2, Field::Fixed32(bits)) => simple = Some(f64::from(f32::from_bits(bits))),
                _ => {}
            }
        }
        if let (Some(tag), Some(value)) = (tag, simple) {
            out.entry(tag).or_default().push((step, value));
        }
    }
    Some(())
}

enum Field<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// The (field number, value) pairs of one protobuf message.
fn fields(mut b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let value = match key & 7 {
            0 => Field::Varint(varint(&mut b)?),
            1 => {
                b = b.get(8..)?;
                Field::Fixed64
            }
            2 => {
                let len = usize::try_from(varint(&mut b)?).ok()?;
                let (v, rest) = (b.get(..len)?, b.get(len..)?);
                b = rest;
                Field::Bytes(v)
            }
            5 => {
                let v = b.get(..4)?;
                b = b.get(4..)?;
                Field::Fixed32(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
            }
            _ => return None,
        };
        out.push((key >> 3, value));
    }
    Some(out)
}

/// A handle to one event file that several hooks write to, created on the first write so
/// that a run refused before its first step leaves no file behind.
#[derive(Clone)]
pub struct SummaryWriter {
    /// None: a writer that writes nothing (a data-parallel run's ranks other than 0).
    inner: Option<SharedFile>,
}

/// The folder and, once written to, the event file in it.
type SharedFile = std::sync::Arc<std::sync::Mutex<(PathBuf, Option<EventWriter>)>>;

impl SummaryWriter {
    pub fn new(dir: &Path) -> Self {
        SummaryWriter {
            inner: Some(std::sync::Arc::new(std::sync::Mutex::new((
                dir.to_path_buf(),
                None,
            )))),
        }
    }

    /// A writer that writes nothing.
    pub fn silent() -> Self {
        SummaryWriter { inner: None }
    }

    /// Writes `scalars` at `step` and flushes, so TensorBoard sees them while training runs.
    pub fn scalars(&self, step: i64, scalars: &[(&str, f32)]) -> Result<()> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        let mut guard = inner
            .lock()
            .map_err(|_| Error::Internal("a summary writer thread panicked".into()))?;
        let (dir, writer) = &mut *guard;
        if writer.is_none() {
            *writer = Some(EventWriter::create(dir)?);
        }
        match writer.as_mut() {
            Some(w) => {
                w.scalars(step, scalars)?;
                w.flush()
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads records back, checking both CRCs: the framing as TensorBoard checks it.
    fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len_bytes = &bytes[at..at + 8];
            let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
            let crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
            assert_eq!(crc, masked_crc(len_bytes));
            let data = &bytes[at + 12..at + 12 + len];
            let crc =
                u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().expect("4"));
            assert_eq!(crc, masked_crc(data));
            out.push(data.to_vec());
            at += 16 + len;
        }
        out
    }

    #[test]
    fn read_scalars_reads_back_what_the_writer_wrote_and_tolerates_a_cut_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut w = EventWriter::create(dir.path()).expect("creates");
        w.scalars(5, &[("loss", 0.5), ("accuracy", 0.75)])
            .expect("writes");
        w.scalars(9, &[("loss", 0.25)]).expect("writes");
        w.flush().expect("flushes");
        let path = w.path().to_path_buf();
        drop(w);
        let scalars = read_scalars(dir.path()).expect("reads");
        assert_eq!(scalars["loss"], vec![(5, 0.5), (9, 0.25)]);
        assert_eq!(scalars["accuracy"], vec![(5, 0.75)]);
        let mut bytes = std::fs::read(&path).expect("file");
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).expect("cut");
        assert_eq!(
            read_scalars(dir.path()).expect("reads")["loss"],
            vec![(5, 0.5)]
        );
        let last = bytes.len() - 1;
        bytes[last - 10] ^= 0xff;
        std::fs::write(&path, &bytes).expect("damage");
        assert_eq!(
            read_scalars(dir.path()).expect("reads")["loss"],
            vec![(5, 0.5)],
            "damage inside the cut record is not read"
        );
        assert!(read_scalars(&dir.path().join("none"))
            .expect("none")
            .is_empty());
    }

    #[test]
    fn crc32c_and_its_mask_match_known_values() {
        // CRC32C("123456789") is the standard check value 0xE3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        // A record TF 2.15's TFRecordWriter framed (the second record of
        // shared/tfrecord/corrupt/not_an_example.tfrecord): its length, the masked CRC TF
        // wrote for it, its data, and the masked CRC TF wrote for the data.
        let len = 14u64.to_le_bytes();
        assert_eq!(masked_crc(&len).to_le_bytes(), [0xc5, 0xe5, 0x69, 0x3f]);
        assert_eq!(
            masked_crc(b"not an example").to_le_bytes(),
            [0x76, 0xe7, 0x9d, 0x65]
        );
    }

    #[test]
    fn a_scalar_event_is_framed_and_encoded_as_tensorflow_does() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut w = EventWriter::create(dir.path()).expect("creates");
        w.scalars(300, &[("loss", 0.5)]).expect("writes");
        w.flush().expect("flushes");
        let name = w
            .path()
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        let recs = records(&std::fs::read(w.path()).expect("file"));
        assert_eq!(recs.len(), 2);
        assert_eq!(
            &recs[0][9..],
            b"\x1a\x0dbrain.Event:2",
            "version after wall_time"
        );
        // wall_time (9 bytes), step 300 = varint ac 02, summary {value {tag "loss", simple_value 0.5}}.
        assert_eq!(
            &recs[1][9..],
            b"\x10\xac\x02\x2a\x0d\x0a\x0b\x0a\x04loss\x15\x00\x00\x00\x3f"
        );
    }

    /// Decodes the fields of one protobuf message: (field number, wire value).
    fn fields(mut b: &[u8]) -> Vec<(u64, Vec<u8>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte < 0x80 {
                    return v;
                }
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let value = match key & 7 {
                0 => varint(&mut b).to_le_bytes().to_vec(),
                1 => {
                    let (v, rest) = b.split_at(8);
                    b = rest;
                    v.to_vec()
                }
                2 => {
                    let len = varint(&mut b) as usize;
                    let (v, rest) = b.split_at(len);
                    b = rest;
                    v.to_vec()
                }
                5 => {
                    let (v, rest) = b.split_at(4);
                    b = rest;
                    v.to_vec()
                }
                other => panic!("wire type {other}"),
            };
            out.push((key >> 3, value));
        }
        out
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any scalars at any steps come back, in order, from valid frames.
            #[test]
            fn scalar_events_round_trip(
                events in proptest::collection::vec(
                    (any::<i64>(), proptest::collection::vec(("[ -~]{0,20}", any::<f32>()), 0..4)),
                    0..6,
                ),
            ) {
                let dir = tempfile::tempdir().expect("temp dir");
                let mut w = EventWriter::create(dir.path()).expect("creates");
                for (step, scalars) in &events {
                    let refs: Vec<(&str, f32)> = scalars.iter().map(|(t, v)| (t.as_str(), *v)).collect();
                    w.scalars(*step, &refs).expect("writes");
                }
                w.flush().expect("flushes");
                let recs = records(&std::fs::read(w.path()).expect("file"));
                prop_assert_eq!(recs.len(), events.len() + 1);
                for (rec, (step, scalars)) in recs[1..].iter().zip(&events) {
                    let f = fields(rec);
                    prop_assert_eq!(f[1].0, 2);
                    prop_assert_eq!(u64::from_le_bytes(f[1].1.clone().try_into().expect("8")), *step as u64);
                    let values: Vec<(String, u32)> = fields(&f[2].1)
                        .into_iter()
                        .map(|(_, v)| {
                            let vf = fields(&v);
                            let tag = String::from_utf8(vf[0].1.clone()).expect("utf-8");
                            let bits = u32::from_le_bytes(vf[1].1.clone().try_into().expect("4"));
                            (tag, bits)
                        })
                        .collect();
                    let expected: Vec<(String, u32)> = scalars.iter().map(|(t, v)| (t.clone(), v.to_bits())).collect();
                    prop_assert_eq!(values, expected);
                }
            }
        }
    }
}
