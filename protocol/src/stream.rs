//! Frames on a byte stream (QUIC): each frame is preceded by its length as a
//! 4-byte big-endian unsigned integer.

/// Prefixes a frame with its length.
pub fn length_prefixed(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + frame.len());
    out.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    out.extend_from_slice(frame);
    out
}

/// A frame announced a length over the limit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a frame of {size} bytes exceeds the limit of {limit}")]
pub struct FrameTooLarge {
    pub size: usize,
    pub limit: usize,
}

/// Cuts a byte stream into frames. Feed it whatever the stream yields; it
/// keeps partial frames, so reading can be cancelled between feeds without
/// losing bytes.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    limit: usize,
}

impl FrameBuffer {
    /// A buffer that refuses frames over `limit` bytes.
    pub fn new(limit: usize) -> FrameBuffer {
        FrameBuffer { buf: Vec::new(), limit }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is buffered. An announced length over
    /// the limit is an error at once, before its bytes arrive, so that the
    /// buffer never grows beyond one frame and a header.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameTooLarge> {
        let Some(header) = self.buf.get(..4) else { return Ok(None) };
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if size > self.limit {
            return Err(FrameTooLarge { size, limit: self.limit });
        }
        if self.buf.len() < 4 + size {
            return Ok(None);
        }
        let frame = self.buf[4..4 + size].to_vec();
        self.buf.drain(..4 + size);
        if self.buf.is_empty() && self.buf.capacity() > 1024 {
            // An idle connection keeps no buffer of the size of its largest
            // frame: there may be a hundred thousand of them.
            self.buf = Vec::new();
        }
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split() {
        let mut wire = length_prefixed(b"hello");
        wire.extend(length_prefixed(b""));
        wire.extend(length_prefixed(&[7; 300]));
        for chunk in [1, 2, 3, 5, 64, 1000] {
            let mut buffer = FrameBuffer::new(1024);
            let mut frames = Vec::new();
            for piece in wire.chunks(chunk) {
                buffer.extend(piece);
                while let Some(frame) = buffer.next_frame().unwrap() {
                    frames.push(frame);
                }
            }
            assert_eq!(frames, vec![b"hello".to_vec(), Vec::new(), vec![7; 300]]);
        }
    }

    #[test]
    fn an_oversize_announcement_is_refused_before_its_bytes() {
        let mut buffer = FrameBuffer::new(100);
        buffer.extend(&1_000_000u32.to_be_bytes());
        assert_eq!(buffer.next_frame(), Err(FrameTooLarge { size: 1_000_000, limit: 100 }));
    }
}
