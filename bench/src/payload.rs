//! The text of a benchmark message: who sent it, when it was due, and to
//! which step of the load it belongs, so that the receiving connection can
//! compute the send-to-delivery latency on its own. The same text is an
//! imbox message and an MQTT payload, so both systems carry the same bytes.

/// Every message is padded to this many bytes: a short chat message.
pub const MESSAGE_BYTES: usize = 64;

/// The marker that starts every benchmark message.
const MAGIC: &str = "ibm1";

/// What a message carries about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The run it belongs to ([`crate::clock::run_id`]).
    pub run: u32,
    /// The load step it was sent in.
    pub step: u16,
    /// The sending session's index.
    pub sender: u32,
    /// A number unique within the run.
    pub seq: u64,
    /// When it was due to be sent ([`crate::clock::now_us`]): latencies count
    /// from the schedule, not from when the generator got round to it, so that
    /// a stalled generator shows up as latency instead of hiding it.
    pub scheduled_us: u64,
}

impl Stamp {
    /// The message text, padded to [`MESSAGE_BYTES`].
    pub fn encode(&self) -> String {
        let mut text = format!(
            "{MAGIC} {:08x} {} {} {} {} ",
            self.run, self.step, self.sender, self.seq, self.scheduled_us
        );
        while text.len() < MESSAGE_BYTES {
            text.push('.');
        }
        text
    }

    /// Reads a message text; `None` for anything that is not a benchmark message.
    pub fn decode(text: &str) -> Option<Stamp> {
        let mut fields = text.split(' ');
        if fields.next()? != MAGIC {
            return None;
        }
        Some(Stamp {
            run: u32::from_str_radix(fields.next()?, 16).ok()?,
            step: fields.next()?.parse().ok()?,
            sender: fields.next()?.parse().ok()?,
            seq: fields.next()?.parse().ok()?,
            scheduled_us: fields.next()?.parse().ok()?,
        })
    }

    /// The client-chosen message id (imbox de-duplicates by it per sender).
    pub fn message_id(&self) -> String {
        format!("{:08x}-{}-{}", self.run, self.sender, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_survive_the_round_trip_at_a_fixed_size() {
        let stamp =
            Stamp { run: 0xdead_beef, step: 3, sender: 99_999, seq: 12_345_678, scheduled_us: 987_654_321 };
        let text = stamp.encode();
        assert_eq!(text.len(), MESSAGE_BYTES);
        assert_eq!(Stamp::decode(&text), Some(stamp));
        let small = Stamp { run: 1, step: 0, sender: 0, seq: 0, scheduled_us: 0 };
        assert_eq!(small.encode().len(), MESSAGE_BYTES);
        assert_eq!(Stamp::decode(&small.encode()), Some(small));
    }

    #[test]
    fn other_texts_are_not_stamps() {
        for text in
            ["", "hello", "ibm1", "ibm1 zz 1 2 3 4", "ibm2 00000001 1 2 3 4 ", "ibm1 00000001 x 2 3 4"]
        {
            assert_eq!(Stamp::decode(text), None, "{text:?}");
        }
    }

    #[test]
    fn message_ids_are_valid_imbox_ids() {
        let stamp = Stamp { run: u32::MAX, step: u16::MAX, sender: u32::MAX, seq: u64::MAX, scheduled_us: 0 };
        assert!(imbox_protocol::names::valid_message_id(&stamp.message_id()));
    }
}
