//! Typed statistics and the one way they are read: each layer keeps its counters in a struct
//! of its own (the transport's [`crate::Stats`], the Totem core's, the executive's, each
//! service's) and implements [`Visit`] for it; whoever shows them (`aisctl status` today,
//! metrics or a web page later) implements [`Visitor`] once and walks every layer.
//!
//! Every name is `snake_case` and unique across the layers of one executive, so a flat list
//! (what `aisctl status` prints) stays unambiguous; [`names`] helps tests check that.

/// Where statistics go: one call per value, in a fixed order.
pub trait Visitor {
    /// A count that only rises while the process runs (frames, errors, events).
    fn counter(&mut self, name: &'static str, value: u64);

    /// A value that rises and falls (connections, queue lengths, the current key epoch).
    fn gauge(&mut self, name: &'static str, value: u64);
}

/// Statistics that can report themselves.
pub trait Visit {
    /// Calls `v` once per value.
    fn visit(&self, v: &mut dyn Visitor);
}

/// Whether a value is a counter or a gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Only rises.
    Counter,
    /// Rises and falls.
    Gauge,
}

/// A [`Visitor`] that collects every value in order: `(name, kind, value)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collect(pub Vec<(&'static str, Kind, u64)>);

impl Visitor for Collect {
    fn counter(&mut self, name: &'static str, value: u64) {
        self.0.push((name, Kind::Counter, value));
    }

    fn gauge(&mut self, name: &'static str, value: u64) {
        self.0.push((name, Kind::Gauge, value));
    }
}

impl Collect {
    /// The value named `name`, if it was visited.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _, _)| *n == name).map(|e| e.2)
    }
}

/// The names `x` visits, in order.
pub fn names(x: &dyn Visit) -> Vec<&'static str> {
    let mut c = Collect::default();
    x.visit(&mut c);
    c.0.into_iter().map(|(n, _, _)| n).collect()
}

/// The first name visited twice, if any.
pub fn duplicate(names: &[&'static str]) -> Option<&'static str> {
    let mut seen = std::collections::BTreeSet::new();
    names.iter().copied().find(|n| !seen.insert(*n))
}

impl Visit for crate::Stats {
    fn visit(&self, v: &mut dyn Visitor) {
        v.counter("frames_in", self.frames_in);
        v.counter("bytes_in", self.bytes_in);
        v.counter("frames_out", self.frames_out);
        v.counter("bytes_out", self.bytes_out);
        v.counter("rx_truncated", self.rx_truncated);
        v.counter("rx_dropped", self.rx_dropped);
        v.counter("tx_errors", self.tx_errors);
        v.counter("unknown_sources", self.unknown_sources);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_statistics_are_visited_once_each_with_their_values() {
        let s = crate::Stats {
            frames_in: 1,
            bytes_in: 2,
            frames_out: 3,
            bytes_out: 4,
            rx_truncated: 5,
            rx_dropped: 6,
            tx_errors: 7,
            unknown_sources: 8,
        };
        let mut c = Collect::default();
        s.visit(&mut c);
        let values: Vec<u64> = c.0.iter().map(|e| e.2).collect();
        assert_eq!(values, [1, 2, 3, 4, 5, 6, 7, 8], "every field, in order");
        assert!(c.0.iter().all(|e| e.1 == Kind::Counter));
        assert_eq!(duplicate(&names(&s)), None);
        assert_eq!(c.get("tx_errors"), Some(7));
        assert_eq!(duplicate(&["a", "b", "a"]), Some("a"));
    }
}
