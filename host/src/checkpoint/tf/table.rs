//! The sorted string table TF's checkpoint index is written in: LevelDB's table format
//! (TF's `tensorflow/core/lib/io/table`), read whole.
//!
//! A file is data blocks, a meta-index block, an index block and a 48-byte footer: the
//! meta-index and index blocks' handles, padding, and the magic number. The index maps a
//! key past each data block's last key to the block's handle. Each block is its entries,
//! keys prefix-compressed against the previous one and restarted every few entries,
//! followed by a trailer: a compression byte (TF writes none) and a masked CRC-32C.
//!
//! No crate fits: the maintained LevelDB crates are whole databases (logs, compaction,
//! caches) for a 100-line read of one immutable file.

use crate::events::masked_crc;

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

const FOOTER_LEN: usize = 48;
const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const TRAILER_LEN: usize = 5;

/// Every key and value of a table, in key order. Errors say what is wrong; the caller
/// names the file.
pub fn entries(file: &[u8]) -> Result<Vec<Entry>, String> {
    if file.len() < FOOTER_LEN {
        return Err(format!("{} bytes is too short for a table", file.len()));
    }
    let footer = &file[file.len() - FOOTER_LEN..];
    let magic = u64::from_le_bytes(footer[40..].try_into().map_err(|_| "footer")?);
    if magic != MAGIC {
        return Err(format!(
            "bad magic number {magic:#x}: not a TF checkpoint index"
        ));
    }
    let mut at = 0;
    let _meta_index = handle(footer, &mut at)?;
    let index = handle(footer, &mut at)?;
    let mut out = Vec::new();
    for (_, value) in block(file, index)? {
        let mut at = 0;
        let data = handle(&value, &mut at)?;
        out.extend(block(file, data)?);
    }
    Ok(out)
}

/// A block's offset and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Handle {
    offset: usize,
    size: usize,
}

fn handle(bytes: &[u8], at: &mut usize) -> Result<Handle, String> {
    let offset = varint(bytes, at)?;
    let size = varint(bytes, at)?;
    Ok(Handle {
        offset: usize::try_from(offset).map_err(|_| "a block offset past memory")?,
        size: usize::try_from(size).map_err(|_| "a block size past memory")?,
    })
}

/// A block's entries, its checksum checked.
fn block(file: &[u8], h: Handle) -> Result<Vec<Entry>, String> {
    let end = h
        .offset
        .checked_add(h.size)
        .and_then(|e| e.checked_add(TRAILER_LEN))
        .filter(|&e| e <= file.len())
        .ok_or_else(|| {
            format!(
                "a block at {} of {} bytes runs past the end",
                h.offset, h.size
            )
        })?;
    let contents = &file[h.offset..h.offset + h.size];
    let trailer = &file[h.offset + h.size..end];
    if trailer[0] != 0 {
        return Err(format!(
            "a block at {} is compressed (type {}); TF writes none",
            h.offset, trailer[0]
        ));
    }
    let stored = u32::from_le_bytes(trailer[1..5].try_into().map_err(|_| "trailer")?);
    let mut checked = contents.to_vec();
    checked.push(trailer[0]);
    if masked_crc(&checked) != stored {
        return Err(format!("the block at {} fails its checksum", h.offset));
    }
    parse_block(contents).map_err(|e| format!("the block at {}: {e}", h.offset))
}

/// Entries of a block's contents (without its trailer).
fn parse_block(contents: &[u8]) -> Result<Vec<Entry>, String> {
    let n = contents.len();
    if n < 4 {
        return Err("too short".into());
    }
    let restarts =
        u32::from_le_bytes(contents[n - 4..].try_into().map_err(|_| "restarts")?) as usize;
    let entries_end = restarts
        .checked_mul(4)
        .and_then(|r| n.checked_sub(4 + r))
        .ok_or("more restart points than bytes")?;
    let mut out = Vec::new();
    let mut key: Vec<u8> = Vec::new();
    let mut at = 0;
    while at < entries_end {
        let shared = varint(contents, &mut at)? as usize;
        let unshared = varint(contents, &mut at)? as usize;
        let value_len = varint(contents, &mut at)? as usize;
        if shared > key.len() {
            return Err("a key shares more than the previous key has".into());
        }
        let key_end = at
            .checked_add(unshared)
            .filter(|&e| e <= entries_end)
            .ok_or("a key runs past the entries")?;
        key.truncate(shared);
        key.extend_from_slice(&contents[at..key_end]);
        let value_end = key_end
            .checked_add(value_len)
            .filter(|&e| e <= entries_end)
            .ok_or("a value runs past the entries")?;
        out.push((key.clone(), contents[key_end..value_end].to_vec()));
        at = value_end;
    }
    Ok(out)
}

/// A little-endian base-128 varint (up to 64 bits).
pub fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or("a number runs past the end")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a number longer than 64 bits".into())
}
