//! Matching an MQTT client's PUBACKs to the publishes they acknowledge, for the
//! callers that must act only on the broker's acknowledgement of a given message (the
//! alert deliverer, the edge forwarder).
//!
//! A client (rumqttc) writes publishes out in the order they were requested and
//! reports each as it goes (`Outgoing::Publish(pkid)`), then the broker's `PubAck
//! (pkid)`. Each publish reserves the next sequence number before it is requested;
//! the packet id of the next publish written out is bound to the oldest reserved
//! number. Packet ids are reused after their PUBACK, so only this pairing, not the id
//! alone, says which message was acknowledged. When a connection drops, the client may
//! drop or resend what was queued or in flight and reuse its ids: a caller replaces the
//! client and its tracker together and publishes what was not acknowledged again.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

/// Matches PUBACKs to publishes on one MQTT connection.
#[derive(Debug, Default)]
pub struct Tracker {
    next: u64,
    /// Sequence numbers reserved, in order, not yet written out (0: abandoned).
    queued: VecDeque<u64>,
    /// Packet id in flight → its sequence number (0: abandoned).
    in_flight: HashMap<u16, u64>,
    /// Acknowledged sequence numbers → when the PUBACK arrived.
    acked: HashMap<u64, DateTime<Utc>>,
    /// Whether the connection is up (attempts made while it is down do not count).
    pub connected: bool,
}

impl Tracker {
    pub fn reserve(&mut self) -> u64 {
        self.next += 1;
        self.queued.push_back(self.next);
        self.next
    }

    pub fn sent(&mut self, pkid: u16) {
        if self.in_flight.contains_key(&pkid) {
            return; // a retransmission
        }
        if let Some(seq) = self.queued.pop_front() {
            self.in_flight.insert(pkid, seq);
        }
    }

    pub fn acked(&mut self, pkid: u16, at: DateTime<Utc>) {
        if let Some(seq) = self.in_flight.remove(&pkid)
            && seq != 0
        {
            self.acked.insert(seq, at);
        }
    }

    pub fn is_acked(&self, seq: u64) -> bool {
        self.acked.contains_key(&seq)
    }

    /// When `seq` was acknowledged, if it was; forgets it either way. A publish still
    /// queued or in flight stays in line as abandoned (sequence 0): the client will
    /// still send it, and its PUBACK must not be credited to a later publish.
    pub fn take(&mut self, seq: u64) -> Option<DateTime<Utc>> {
        for s in self.queued.iter_mut().chain(self.in_flight.values_mut()) {
            if *s == seq {
                *s = 0;
            }
        }
        self.acked.remove(&seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pubacks_are_matched_to_their_publishes() {
        let at = DateTime::from_timestamp(1_764_547_200, 0).unwrap();
        let mut t = Tracker::default();
        let (a, b) = (t.reserve(), t.reserve());
        t.sent(1);
        t.sent(2);
        t.sent(1); // a retransmission takes no sequence number
        t.acked(2, at);
        assert!(!t.is_acked(a) && t.is_acked(b));
        // `a` timed out and is given up on while still in flight; a publish reserved
        // after it and one reserved but not yet written out both stay in order.
        let c = t.reserve();
        assert_eq!(t.take(a), None);
        let d = t.reserve();
        assert_eq!(t.take(c), None); // still queued: abandoned in place
        t.sent(3); // c's packet, abandoned
        t.sent(4); // d's packet
        t.acked(1, at); // a's late PUBACK is credited to nobody
        t.acked(3, at);
        assert!(!t.is_acked(c) && !t.is_acked(d));
        t.acked(4, at);
        assert_eq!(t.take(d), Some(at));
        assert_eq!(t.take(b), Some(at));
    }
}
