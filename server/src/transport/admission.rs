//! Admission: how much the hub takes on at once, in all and for each member.
//!
//! Two kinds of place are counted apart: calls in flight (answered within the request or
//! batch deadline) and long-lived streams (change feeds, open for hours). Each has a total for
//! the hub and a share per member, so that one member at its share (an operator holding many
//! idle feeds, or a flood of calls) leaves room for every other member. Health and reflection
//! take no place at all: they are never refused for capacity.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a call takes while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlaceKind {
    Call,
    Stream,
}

impl PlaceKind {
    fn noun(self) -> &'static str {
        match self {
            PlaceKind::Call => "calls in flight",
            PlaceKind::Stream => "change feeds open",
        }
    }
}

/// How many places of each kind, in all and per member.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionLimits {
    pub calls: usize,
    pub calls_per_member: usize,
    pub streams: usize,
    pub streams_per_member: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    calls: usize,
    streams: usize,
}

impl Held {
    fn of(&mut self, kind: PlaceKind) -> &mut usize {
        match kind {
            PlaceKind::Call => &mut self.calls,
            PlaceKind::Stream => &mut self.streams,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Admission {
    limits: AdmissionLimits,
    calls: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    /// Places each member holds now; a member holding none has no entry.
    held: Arc<Mutex<HashMap<String, Held>>>,
}

/// Why a call was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Full {
    /// The hub as a whole has no free place of this kind.
    Hub(PlaceKind),
    /// The member holds its whole share of this kind.
    Member { kind: PlaceKind, share: usize },
}

impl Full {
    pub(crate) fn reason(&self, member: &str) -> String {
        match self {
            Full::Hub(kind) => format!("the hub is at capacity ({}); retry shortly", kind.noun()),
            Full::Member { kind, share } => format!(
                "member {member} has {share} {}, its share of the hub; retry when one of them has finished",
                kind.noun()
            ),
        }
    }
}

/// A place held by one call; given back when dropped.
#[derive(Debug)]
pub(crate) struct Place {
    _permit: OwnedSemaphorePermit,
    /// The metrics' count of the member's calls in flight, taken down with the place.
    gauge: Option<prometheus_client::metrics::gauge::Gauge>,
    member: String,
    kind: PlaceKind,
    held: Arc<Mutex<HashMap<String, Held>>>,
}

impl Place {
    /// Counts the place in `gauge` while it is held.
    pub(crate) fn track(&mut self, gauge: prometheus_client::metrics::gauge::Gauge) {
        gauge.inc();
        self.gauge = Some(gauge);
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(gauge) = &self.gauge {
            gauge.dec();
        }
        let mut held = self.held.lock().expect("admission counts");
        if let Some(counts) = held.get_mut(&self.member) {
            let count = counts.of(self.kind);
            *count = count.saturating_sub(1);
            if counts.calls == 0 && counts.streams == 0 {
                held.remove(&self.member);
            }
        }
    }
}

impl Admission {
    pub(crate) fn new(limits: AdmissionLimits) -> Self {
        Self {
            limits,
            calls: Arc::new(Semaphore::new(limits.calls)),
            streams: Arc::new(Semaphore::new(limits.streams)),
            held: Arc::default(),
        }
    }

    /// A place of `kind` for `member`, or why there is none. Never waits.
    pub(crate) fn admit(&self, member: &str, kind: PlaceKind) -> Result<Place, Full> {
        let (total, share) = match kind {
            PlaceKind::Call => (&self.calls, self.limits.calls_per_member),
            PlaceKind::Stream => (&self.streams, self.limits.streams_per_member),
        };
        let mut held = self.held.lock().expect("admission counts");
        let holds = held.get(member).map_or(0, |h| match kind {
            PlaceKind::Call => h.calls,
            PlaceKind::Stream => h.streams,
        });
        if holds >= share {
            return Err(Full::Member { kind, share });
        }
        let permit = total.clone().try_acquire_owned().map_err(|_| Full::Hub(kind))?;
        *held.entry(member.to_owned()).or_default().of(kind) += 1;
        Ok(Place { _permit: permit, gauge: None, member: member.to_owned(), kind, held: self.held.clone() })
    }

    /// Members holding places now (for tests: entries must not outlive their places).
    #[cfg(test)]
    fn members_holding(&self) -> usize {
        self.held.lock().expect("admission counts").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(calls: usize, calls_per_member: usize, streams: usize, streams_per_member: usize) -> Admission {
        Admission::new(AdmissionLimits { calls, calls_per_member, streams, streams_per_member })
    }

    #[test]
    fn a_member_at_its_share_leaves_the_others_served() {
        let a = admission(4, 2, 4, 1);
        let first = a.admit("VNPT", PlaceKind::Call).unwrap();
        let _second = a.admit("VNPT", PlaceKind::Call).unwrap();
        assert_eq!(a.admit("VNPT", PlaceKind::Call).unwrap_err(), Full::Member { kind: PlaceKind::Call, share: 2 });
        let _ict = a.admit("DOICT", PlaceKind::Call).unwrap();
        drop(first);
        let _again = a.admit("VNPT", PlaceKind::Call).expect("a finished call frees its place");
    }

    #[test]
    fn streams_and_calls_are_counted_apart() {
        let a = admission(2, 2, 1, 1);
        let _feed = a.admit("VNPT", PlaceKind::Stream).unwrap();
        assert_eq!(a.admit("VNPT", PlaceKind::Stream).unwrap_err(), Full::Member { kind: PlaceKind::Stream, share: 1 });
        assert_eq!(a.admit("VIETTEL", PlaceKind::Stream).unwrap_err(), Full::Hub(PlaceKind::Stream));
        let _call = a.admit("VNPT", PlaceKind::Call).expect("an open feed leaves the member its calls");
    }

    #[test]
    fn the_hub_total_holds_whatever_the_shares() {
        let a = admission(3, 2, 1, 1);
        let _a1 = a.admit("A", PlaceKind::Call).unwrap();
        let _a2 = a.admit("A", PlaceKind::Call).unwrap();
        let _b1 = a.admit("B", PlaceKind::Call).unwrap();
        assert_eq!(a.admit("C", PlaceKind::Call).unwrap_err(), Full::Hub(PlaceKind::Call));
        let reason = Full::Hub(PlaceKind::Call).reason("C");
        assert!(reason.contains("at capacity"), "{reason}");
        let reason = Full::Member { kind: PlaceKind::Call, share: 2 }.reason("A");
        assert!(reason.contains("member A has 2 calls in flight"), "{reason}");
    }

    #[test]
    fn members_holding_nothing_are_forgotten() {
        let a = admission(8, 4, 8, 4);
        let places: Vec<_> = (0..4).map(|i| a.admit(&format!("M{i}"), PlaceKind::Call).unwrap()).collect();
        let refused = a.admit("M0", PlaceKind::Stream).unwrap();
        assert_eq!(a.members_holding(), 4);
        drop(places);
        assert_eq!(a.members_holding(), 1);
        drop(refused);
        assert_eq!(a.members_holding(), 0);
        // A refusal leaves no entry behind.
        let b = admission(1, 1, 1, 1);
        let _held = b.admit("A", PlaceKind::Call).unwrap();
        assert!(b.admit("B", PlaceKind::Call).is_err());
        assert_eq!(b.members_holding(), 1);
    }
}
