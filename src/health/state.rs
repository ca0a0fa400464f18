//! The pure rise/fall state machine of one edge. No clock, no I/O.

use std::fmt;

/// What the checks say about an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not decided yet (new edge): served as up.
    Unknown,
    Up,
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        }
    }

    /// Whether an edge in this state is served (everything but `Down`).
    pub fn is_served(self) -> bool {
        self != State::Down
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            State::Unknown => 0,
            State::Up => 1,
            State::Down => 2,
        }
    }

    pub(crate) fn from_u8(value: u8) -> State {
        match value {
            1 => State::Up,
            2 => State::Down,
            _ => State::Unknown,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A change of state caused by one check result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
}

/// Consecutive results and the state they add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracker {
    pub state: State,
    /// Consecutive successes (reset by a failure).
    pub successes: u32,
    /// Consecutive failures (reset by a success).
    pub failures: u32,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

impl Tracker {
    /// A new edge: unknown, no results yet.
    pub fn new() -> Tracker {
        Tracker {
            state: State::Unknown,
            successes: 0,
            failures: 0,
        }
    }

    /// Records one check result: `rise` consecutive successes make the edge up, `fall`
    /// consecutive failures make it down (from any other state, unknown included).
    pub fn observe(&mut self, ok: bool, rise: u32, fall: u32) -> Option<Transition> {
        let from = self.state;
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if from != State::Up && self.successes >= rise.max(1) {
                self.state = State::Up;
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if from != State::Down && self.failures >= fall.max(1) {
                self.state = State::Down;
            }
        }
        (self.state != from).then_some(Transition {
            from,
            to: self.state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(results: &str, rise: u32, fall: u32) -> Vec<State> {
        let mut t = Tracker::new();
        results
            .chars()
            .map(|c| {
                t.observe(c == '+', rise, fall);
                t.state
            })
            .collect()
    }

    use State::{Down as D, Unknown as U, Up as P};

    #[test]
    fn starts_unknown_and_served() {
        let t = Tracker::new();
        assert_eq!(t.state, State::Unknown);
        assert!(t.state.is_served());
        assert!(!State::Down.is_served());
    }

    #[test]
    fn rise_consecutive_successes_to_come_up() {
        assert_eq!(run("+++", 2, 2), [U, P, P]);
        assert_eq!(run("+-+++", 3, 5), [U, U, U, U, P]);
    }

    #[test]
    fn fall_consecutive_failures_to_go_down() {
        assert_eq!(run("++-+--", 2, 2), [U, P, P, P, P, D]);
        assert_eq!(run("--", 2, 2), [U, D], "unknown goes straight to down");
    }

    #[test]
    fn down_needs_rise_successes_to_come_back() {
        assert_eq!(run("--+-++", 2, 2), [U, D, D, D, D, P]);
    }

    #[test]
    fn rise_and_fall_of_one_flip_immediately() {
        assert_eq!(run("+-+", 1, 1), [P, D, P]);
    }

    #[test]
    fn transitions_are_reported_once() {
        let mut t = Tracker::new();
        assert_eq!(t.observe(true, 2, 2), None);
        assert_eq!(
            t.observe(true, 2, 2),
            Some(Transition {
                from: State::Unknown,
                to: State::Up
            })
        );
        assert_eq!(t.observe(true, 2, 2), None);
        assert_eq!(t.observe(false, 2, 2), None);
        assert_eq!(
            t.observe(false, 2, 2),
            Some(Transition {
                from: State::Up,
                to: State::Down
            })
        );
        assert_eq!((t.successes, t.failures), (0, 2));
    }
}
