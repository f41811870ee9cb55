//! Sans-IO decisions of the link: which outbox records are in flight and
//! which PUBACK releases which record, and how long to wait before the
//! next connection attempt. No sockets, no clocks: the event loop feeds
//! these and acts on the answers.
//!
//! Each connection starts from a fresh MQTT client, so nothing is in flight
//! at a (re)connect: sending resumes from the oldest unacknowledged record.
//! A record whose PUBACK was lost with the connection is therefore sent
//! again under its own sequence number, the duplicate consumers drop.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Tracks outbox records handed to the MQTT client on one connection.
#[derive(Debug)]
pub struct Delivery {
    window: usize,
    /// Publishes handed to the client and not yet written to the socket,
    /// in order: `Some(outbox id)` for data, `None` for anything else.
    queued: VecDeque<Option<u64>>,
    /// Packet id → outbox id, for data written and not yet acknowledged.
    inflight: HashMap<u16, u64>,
    /// Highest outbox id handed to the client on this connection.
    last_sent: Option<u64>,
    queued_data: usize,
}

impl Delivery {
    /// At most `window` data records in flight at once.
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            last_sent: None,
            queued_data: 0,
        }
    }

    /// A new connection: forget everything in flight, start again from the
    /// oldest record.
    pub fn connected(&mut self) {
        self.queued.clear();
        self.inflight.clear();
        self.last_sent = None;
        self.queued_data = 0;
    }

    /// How many more data records may be handed to the client now.
    pub fn room(&self) -> usize {
        self.window
            .saturating_sub(self.queued_data + self.inflight.len())
    }

    /// The outbox id after which to read the next records.
    pub fn resume_after(&self) -> Option<u64> {
        self.last_sent
    }

    /// Outbox record `id` was handed to the client (QoS 1).
    pub fn sent_data(&mut self, id: u64) {
        debug_assert!(self.last_sent.is_none_or(|l| id > l), "out of order");
        self.queued.push_back(Some(id));
        self.queued_data += 1;
        self.last_sent = Some(id);
    }

    /// Some other publish (status, health, results) was handed to the
    /// client; it takes its place in the order of outgoing packets.
    pub fn sent_other(&mut self) {
        self.queued.push_back(None);
    }

    /// The client wrote a publish with packet id `pkid` (0 for QoS 0).
    pub fn written(&mut self, pkid: u16) {
        if let Some(Some(id)) = self.queued.pop_front() {
            self.queued_data -= 1;
            if pkid != 0 {
                self.inflight.insert(pkid, id);
            }
        }
    }

    /// The broker acknowledged `pkid`: the outbox record it carried, if it
    /// was a data record.
    pub fn acked(&mut self, pkid: u16) -> Option<u64> {
        self.inflight.remove(&pkid)
    }

    /// Data records handed over and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.queued_data + self.inflight.len()
    }
}

/// Exponential backoff with jitter between connection attempts, so that a
/// thousand cameras behind one store router do not reconnect in step after
/// a broker restart.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The wait before the next attempt. `jitter` is a uniform random
    /// number in `[0, 1)`: the wait is between half and all of the capped
    /// exponential step ("equal jitter").
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let step = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = jitter.clamp(0.0, 1.0);
        step.mul_f64(0.5 + 0.5 * jitter)
    }

    /// A connection was accepted: start again from the shortest wait.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn acks_release_the_records_their_packets_carried() {
        let mut d = Delivery::new(10);
        d.sent_other(); // birth message, QoS 1
        d.sent_data(5);
        d.sent_other(); // health, QoS 0
        d.sent_data(6);
        assert_eq!(d.in_flight(), 2);
        d.written(1);
        d.written(2);
        d.written(0);
        d.written(3);
        assert_eq!(d.acked(1), None, "the birth message is not a record");
        assert_eq!(d.acked(3), Some(6));
        assert_eq!(d.acked(2), Some(5));
        assert_eq!(d.acked(2), None, "a second PUBACK releases nothing");
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn window_limits_records_in_flight() {
        let mut d = Delivery::new(3);
        for id in 0..3 {
            d.sent_data(id);
        }
        assert_eq!(d.room(), 0);
        d.written(1);
        assert_eq!(d.room(), 0, "written but unacknowledged still counts");
        assert_eq!(d.acked(1), Some(0));
        assert_eq!(d.room(), 1);
        assert_eq!(d.resume_after(), Some(2));
    }

    #[test]
    fn reconnect_resends_from_the_oldest() {
        let mut d = Delivery::new(10);
        d.sent_data(7);
        d.written(1);
        d.sent_data(8);
        d.connected();
        assert_eq!(d.resume_after(), None);
        assert_eq!(d.room(), 10);
        assert_eq!(
            d.acked(1),
            None,
            "an old connection's packet id means nothing"
        );
    }

    #[test]
    fn pkids_reused_after_ack_map_to_the_new_record() {
        let mut d = Delivery::new(10);
        d.sent_data(1);
        d.written(1);
        assert_eq!(d.acked(1), Some(1));
        d.sent_data(2);
        d.written(1);
        assert_eq!(d.acked(1), Some(2));
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let waits: Vec<_> = (0..7).map(|_| b.next_delay(1.0)).collect();
        assert_eq!(waits[0], Duration::from_millis(100));
        assert_eq!(waits[1], Duration::from_millis(200));
        assert_eq!(waits[4], Duration::from_millis(1600));
        assert_eq!(waits[5], Duration::from_secs(2));
        assert_eq!(waits[6], Duration::from_secs(2));
        assert_eq!(b.next_delay(0.0), Duration::from_secs(1), "half the cap");
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(50));
        for _ in 0..100 {
            b.next_delay(0.5);
        }
        assert!(b.next_delay(0.99) <= Duration::from_secs(2), "no overflow");
    }
}
