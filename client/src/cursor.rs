//! Where a device is in its user's stream, and which entries are new.
//!
//! No sockets here: the reconnecting client feeds positions in from sync
//! pages and pushed events, and this type decides what to hand out.

/// How an entry's position relates to the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// At or before the cursor: already handed out; skip it.
    Seen,
    /// After the cursor: hand it out. Positions are box-wide, so a user's
    /// entries skip numbers; the server never pushes past one it could not
    /// deliver (it reads the store instead), so a jump is not a loss.
    Next,
}

/// The position of the last entry handed out (0 before the first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCursor {
    position: u64,
}

impl LogCursor {
    /// A cursor after `position`.
    pub fn new(position: u64) -> LogCursor {
        LogCursor { position }
    }

    /// The position of the last entry handed out.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Where an entry at `position` stands relative to the cursor.
    pub fn place(&self, position: u64) -> Placement {
        if position <= self.position {
            Placement::Seen
        } else {
            Placement::Next
        }
    }

    /// Records that the entry at `position` is handed out. Returns false,
    /// and changes nothing, when it had been already.
    pub fn advance(&mut self, position: u64) -> bool {
        if position <= self.position {
            return false;
        }
        self.position = position;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_handed_out_once() {
        let mut cursor = LogCursor::new(3);
        assert_eq!(cursor.place(2), Placement::Seen);
        assert_eq!(cursor.place(3), Placement::Seen);
        assert_eq!(cursor.place(4), Placement::Next);
        assert_eq!(cursor.place(9), Placement::Next, "positions skip numbers");

        // A sync page and pushes overlapping after a reconnect: 4..=6 from
        // the page, 5..=7 pushed.
        let delivered: Vec<u64> = [4, 5, 6, 5, 6, 7].into_iter().filter(|&p| cursor.advance(p)).collect();
        assert_eq!(delivered, [4, 5, 6, 7]);
        assert_eq!(cursor.position(), 7);
        assert!(!cursor.advance(0));
    }

    #[test]
    fn a_fresh_cursor_takes_any_position() {
        let cursor = LogCursor::default();
        assert_eq!(cursor.place(0), Placement::Seen);
        assert_eq!(cursor.place(1), Placement::Next);
        assert_eq!(cursor.place(u64::MAX), Placement::Next);
    }
}
