//! Fuzz targets without sockets: the client frame decoder and the
//! length-prefixed stream framing of QUIC.

#![allow(clippy::unwrap_used)]

use imbox_fuzz::{run, Rng};
use imbox_protocol::shape::check_client_frame;
use imbox_protocol::stream::{length_prefixed, FrameBuffer, FrameTooLarge};
use imbox_protocol::{ClientFrame, DecodeError, ServerFrame};

/// The decoder never panics, accepts only what has the documented shape,
/// re-encodes what it accepts to the same frame, and answers with the id
/// the shape check read.
#[test]
fn frame_decoder() {
    run("frame", 4096, 2000, |bytes| {
        let shape = check_client_frame(bytes);
        match ClientFrame::decode(bytes) {
            Ok(frame) => {
                assert_eq!(shape.verdict, Ok(()), "a frame of the wrong shape was accepted");
                assert_eq!(shape.id, Some(frame.id));
                assert_eq!(ClientFrame::decode(&frame.encode()), Ok(frame));
            }
            Err(DecodeError::Malformed { id, .. }) => assert_eq!(id, shape.id.unwrap_or(0)),
            Err(DecodeError::UnknownRequest { id, .. } | DecodeError::InvalidRequest { id, .. }) => {
                assert_eq!(shape.verdict, Ok(()));
                assert_eq!(Some(id), shape.id);
            }
        }
        let (frame, _) = match ClientFrame::decode(bytes) {
            Ok(_) => return,
            Err(e) => e.to_frame(),
        };
        // The error frame itself always encodes and decodes.
        assert!(ServerFrame::decode(&frame.encode()).is_ok());
        let _ = ServerFrame::decode(bytes);
    });
}

/// A reference reading of a length-prefixed stream: the frames before the
/// first oversize or incomplete one, and whether an oversize one was seen.
fn reference(stream: &[u8], limit: usize) -> (Vec<Vec<u8>>, bool) {
    let mut frames = Vec::new();
    let mut at = 0;
    while stream.len() >= at + 4 {
        let size = u32::from_be_bytes([stream[at], stream[at + 1], stream[at + 2], stream[at + 3]]) as usize;
        if size > limit {
            return (frames, true);
        }
        if stream.len() < at + 4 + size {
            break;
        }
        frames.push(stream[at + 4..at + 4 + size].to_vec());
        at += 4 + size;
    }
    (frames, false)
}

/// However the stream is cut into reads, [`FrameBuffer`] yields the same
/// frames as the reference, refuses an oversize length as soon as its 4
/// bytes are in, and never holds more than one frame and a read.
#[test]
fn stream_framing() {
    run("stream", 8192, 2000, |bytes| {
        let Some((&first, stream)) = bytes.split_first() else { return };
        let limit = [0, 1, 7, 64, 1024][usize::from(first) % 5];
        // The cuts come from the input too, so a failure replays.
        let mut cuts =
            Rng::new(bytes.iter().fold(7u64, |h, &b| h.wrapping_mul(31).wrapping_add(u64::from(b))));
        let (expected, oversize) = reference(stream, limit);
        let mut buffer = FrameBuffer::new(limit);
        let mut frames = Vec::new();
        let mut refused = false;
        let mut at = 0;
        'feed: while at < stream.len() {
            let n = 1 + cuts.below(64);
            let piece = &stream[at..(at + n).min(stream.len())];
            at += piece.len();
            buffer.extend(piece);
            loop {
                match buffer.next_frame() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(FrameTooLarge { size, limit: l }) => {
                        assert!(size > l);
                        refused = true;
                        break 'feed;
                    }
                }
            }
        }
        assert_eq!(frames, expected);
        assert_eq!(refused, oversize);
        // Round trip: what the reference read, re-prefixed, reads the same.
        let wire: Vec<u8> = expected.iter().flat_map(|f| length_prefixed(f)).collect();
        assert_eq!(reference(&wire, limit).0, expected);
    });
}
