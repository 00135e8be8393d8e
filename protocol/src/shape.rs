//! The shape every client frame must have, checked on the raw MessagePack
//! before serde sees it.
//!
//! docs/PROTOCOL.md says a frame is one MessagePack map with string keys.
//! rmp-serde reads more than that: a struct from a positional array, a
//! `String` from `bin`, an internally tagged enum from an integer tag, and it
//! stops after the first value without looking at what follows. This walk
//! refuses all of those, so the decoder is exactly as strict as the document.
//! It allocates nothing and is bounded by the frame's length (each element
//! takes at least one byte, so a declared count larger than the bytes left
//! fails at once) and by [`MAX_DEPTH`].

/// Maps and arrays nested deeper than this are refused. The deepest real
/// frame is `{req: {to: {user: …}}}` or `{req: {members: […]}}`: three
/// levels; the margin is for later versions.
pub const MAX_DEPTH: usize = 16;

/// What the walk found: the frame's id when it could be read, and whether
/// the frame has the documented shape.
#[derive(Debug, PartialEq, Eq)]
pub struct Shape {
    /// The top-level `id` when the frame is a map and `id` is an unsigned
    /// integer that fits in 32 bits (even if something else is wrong).
    pub id: Option<u32>,
    /// `Err` with a reason for people when the shape is wrong.
    pub verdict: Result<(), String>,
}

/// Checks that `bytes` is exactly one map with string keys and no `bin` or
/// `ext` values anywhere, whose `req` (if present) is a map whose `type` (if
/// present) is a string. Missing `id`, `req` or `type` are left to serde,
/// which names the missing field.
pub fn check_client_frame(bytes: &[u8]) -> Shape {
    let mut walk = Walk { bytes, at: 0, id: None };
    let verdict = walk.frame();
    Shape { id: walk.id, verdict }
}

/// Checks that `bytes` is exactly one map with string keys and no `bin` or
/// `ext` values anywhere: the shape of a transfer header
/// ([`crate::transfer`]), which is not a request frame.
pub fn check_map(bytes: &[u8]) -> Result<(), String> {
    let mut walk = Walk { bytes, at: 0, id: None };
    match walk.header()? {
        Kind::Map(pairs) => walk.map(pairs, 1, MapRole::Plain)?,
        _ => return Err("a header is a MessagePack map with string keys".into()),
    }
    if walk.at != bytes.len() {
        return Err(format!("{} bytes after the header's map", bytes.len() - walk.at));
    }
    Ok(())
}

/// The kind of value at the cursor, once its header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// nil, bool, integer or float: nothing inside.
    Scalar,
    /// An unsigned integer that fits in a u64.
    Unsigned(u64),
    /// A string of this many bytes (not yet consumed).
    Str(usize),
    /// An array of this many elements.
    Array(usize),
    /// A map of this many pairs.
    Map(usize),
}

/// Which map is being walked, for the keys that matter in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapRole {
    /// The frame itself: `id` and `req`.
    Frame,
    /// The request: `type`.
    Request,
    /// Anything deeper.
    Plain,
}

/// Where a value sits in the frame, for the checks that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Other,
    /// The value of the top-level `req` key.
    Request,
    /// The value of `type` inside `req`.
    RequestType,
}

struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    id: Option<u32>,
}

impl Walk<'_> {
    fn frame(&mut self) -> Result<(), String> {
        match self.header()? {
            Kind::Map(pairs) => self.map(pairs, 1, MapRole::Frame)?,
            _ => return Err("a frame is a MessagePack map with string keys".into()),
        }
        if self.at != self.bytes.len() {
            return Err(format!("{} bytes after the frame's map", self.bytes.len() - self.at));
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else { return Err("the frame ends inside a value".into()) };
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn uint(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A count of elements: never more than the bytes left, since each takes
    /// at least one.
    fn count(&mut self, n: usize, per_element: usize) -> Result<usize, String> {
        let count = usize::try_from(self.uint(n)?).map_err(|_| "a count too large".to_owned())?;
        let left = self.bytes.len() - self.at;
        if count.saturating_mul(per_element) > left {
            return Err("a map or array claims more elements than the frame holds".into());
        }
        Ok(count)
    }

    /// Reads a value's header; strings, arrays and maps are left open.
    fn header(&mut self) -> Result<Kind, String> {
        let [marker] = *self.take(1)? else { return Err("the frame ends inside a value".into()) };
        Ok(match marker {
            0x00..=0x7f => Kind::Unsigned(u64::from(marker)),
            0x80..=0x8f => Kind::Map(self.count_of(usize::from(marker & 0x0f), 2)?),
            0x90..=0x9f => Kind::Array(self.count_of(usize::from(marker & 0x0f), 1)?),
            0xa0..=0xbf => Kind::Str(usize::from(marker & 0x1f)),
            0xc0 | 0xc2 | 0xc3 => Kind::Scalar,
            0xc1 => return Err("0xc1 is not MessagePack".into()),
            0xc4..=0xc6 => return Err("binary (bin) values are not part of the protocol".into()),
            0xc7..=0xc9 | 0xd4..=0xd8 => {
                return Err("extension (ext) values are not part of the protocol".into())
            }
            0xca => self.take(4).map(|_| Kind::Scalar)?,
            0xcb => self.take(8).map(|_| Kind::Scalar)?,
            0xcc => Kind::Unsigned(self.uint(1)?),
            0xcd => Kind::Unsigned(self.uint(2)?),
            0xce => Kind::Unsigned(self.uint(4)?),
            0xcf => Kind::Unsigned(self.uint(8)?),
            // A signed encoding of a value that is not negative is still
            // that number (MessagePack allows it and some encoders write it).
            0xd0 => self.signed(1)?,
            0xd1 => self.signed(2)?,
            0xd2 => self.signed(4)?,
            0xd3 => self.signed(8)?,
            0xd9 => Kind::Str(self.count(1, 1)?),
            0xda => Kind::Str(self.count(2, 1)?),
            0xdb => Kind::Str(self.count(4, 1)?),
            0xdc => Kind::Array(self.count(2, 1)?),
            0xdd => Kind::Array(self.count(4, 1)?),
            0xde => Kind::Map(self.count(2, 2)?),
            0xdf => Kind::Map(self.count(4, 2)?),
            0xe0..=0xff => Kind::Scalar,
        })
    }

    fn signed(&mut self, n: usize) -> Result<Kind, String> {
        let raw = self.uint(n)?;
        let bits = 8 * n as u32;
        // Sign-extend the n-byte two's complement value.
        let value = ((raw << (64 - bits)) as i64) >> (64 - bits);
        Ok(u64::try_from(value).map_or(Kind::Scalar, Kind::Unsigned))
    }

    fn count_of(&self, count: usize, per_element: usize) -> Result<usize, String> {
        if count.saturating_mul(per_element) > self.bytes.len() - self.at {
            return Err("a map or array claims more elements than the frame holds".into());
        }
        Ok(count)
    }

    fn string(&mut self, len: usize) -> Result<&str, String> {
        std::str::from_utf8(self.take(len)?).map_err(|_| "a string that is not UTF-8".to_owned())
    }

    /// Walks a map's pairs.
    fn map(&mut self, pairs: usize, depth: usize, role: MapRole) -> Result<(), String> {
        for _ in 0..pairs {
            let Kind::Str(len) = self.header()? else {
                return Err("map keys must be strings".into());
            };
            let key = self.string(len)?;
            let place = match (role, key) {
                (MapRole::Frame, "req") => Place::Request,
                (MapRole::Request, "type") => Place::RequestType,
                _ => Place::Other,
            };
            let is_id = role == MapRole::Frame && key == "id";
            let kind = self.header()?;
            if is_id {
                if let Kind::Unsigned(id) = kind {
                    self.id = u32::try_from(id).ok();
                }
            }
            self.value(kind, place, depth)?;
        }
        Ok(())
    }

    /// Walks the rest of a value whose header was read.
    fn value(&mut self, kind: Kind, place: Place, depth: usize) -> Result<(), String> {
        match (place, kind) {
            (Place::Request, Kind::Map(_)) | (Place::RequestType, Kind::Str(_)) | (Place::Other, _) => {}
            (Place::Request, _) => return Err("req must be a map".into()),
            (Place::RequestType, _) => return Err("the request type must be a string".into()),
        }
        match kind {
            Kind::Scalar | Kind::Unsigned(_) => Ok(()),
            Kind::Str(len) => self.string(len).map(|_| ()),
            Kind::Array(len) | Kind::Map(len) if depth >= MAX_DEPTH && len > 0 => {
                Err(format!("maps and arrays nested more than {MAX_DEPTH} deep"))
            }
            Kind::Array(len) => {
                for _ in 0..len {
                    let inner = self.header()?;
                    self.value(inner, Place::Other, depth + 1)?;
                }
                Ok(())
            }
            Kind::Map(pairs) if place == Place::Request => self.map(pairs, depth + 1, MapRole::Request),
            Kind::Map(pairs) => self.map(pairs, depth + 1, MapRole::Plain),
        }
    }
}
