//! Miss coalescing: the first request for a key becomes the leader and does the origin
//! fetch; requests arriving while it is in flight follow and receive the same outcome.
//!
//! In: a key. Out: [`Join::Leader`] (publish the outcome, then drop the guard when the
//! fill completes) or [`Join::Follower`] (await it). A leader that dies without publishing
//! wakes its followers with `None`. No I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Keys in flight: the leader's id and a receiver for late followers.
type Inflight<T> = Arc<Mutex<HashMap<String, (u64, watch::Receiver<Option<T>>)>>>;

pub struct Coalescer<T> {
    inflight: Inflight<T>,
    next_id: Mutex<u64>,
}

impl<T> Default for Coalescer<T> {
    fn default() -> Self {
        Coalescer {
            inflight: Arc::default(),
            next_id: Mutex::new(0),
        }
    }
}

pub enum Join<T> {
    Leader(LeaderGuard<T>),
    Follower(watch::Receiver<Option<T>>),
}

/// Held by the leader until its work is complete; dropping it lets the next request lead.
pub struct LeaderGuard<T> {
    key: String,
    id: u64,
    sender: watch::Sender<Option<T>>,
    inflight: Inflight<T>,
}

impl<T: Clone> Coalescer<T> {
    pub fn join(&self, key: &str) -> Join<T> {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, rx)) = map.get(key) {
            return Join::Follower(rx.clone());
        }
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let (sender, receiver) = watch::channel(None);
        map.insert(key.to_string(), (id, receiver));
        Join::Leader(LeaderGuard {
            key: key.to_string(),
            id,
            sender,
            inflight: self.inflight.clone(),
        })
    }

    /// Keys with a fetch in flight.
    pub fn len(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> LeaderGuard<T> {
    /// Makes the outcome visible to current and later followers.
    pub fn publish(&self, outcome: T) {
        self.sender.send_replace(Some(outcome));
    }

    /// A receiver that sees what this leader publishes (the leader's own client waits on it).
    pub fn subscribe(&self) -> watch::Receiver<Option<T>> {
        self.sender.subscribe()
    }
}

impl<T> Drop for LeaderGuard<T> {
    fn drop(&mut self) {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

/// Waits for the leader's outcome; `None` if the leader went away without one.
pub async fn wait<T: Clone>(mut rx: watch::Receiver<Option<T>>) -> Option<T> {
    loop {
        if let Some(outcome) = rx.borrow_and_update().clone() {
            return Some(outcome);
        }
        if rx.changed().await.is_err() {
            return rx.borrow().clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_outcome() {
        let c: Coalescer<u32> = Coalescer::default();
        let Join::Leader(guard) = c.join("k") else {
            panic!("first is leader")
        };
        let Join::Follower(rx) = c.join("k") else {
            panic!("second follows")
        };
        let waiter = tokio::spawn(wait(rx));
        guard.publish(7);
        assert_eq!(waiter.await.unwrap(), Some(7));
        // Still in flight until the guard drops: late arrivals follow and see it at once.
        let Join::Follower(rx) = c.join("k") else {
            panic!()
        };
        assert_eq!(wait(rx).await, Some(7));
        drop(guard);
        assert!(c.is_empty());
        assert!(matches!(c.join("k"), Join::Leader(_)));
    }

    #[tokio::test]
    async fn a_vanished_leader_wakes_followers() {
        let c: Coalescer<u32> = Coalescer::default();
        let Join::Leader(guard) = c.join("k") else {
            panic!()
        };
        let Join::Follower(rx) = c.join("k") else {
            panic!()
        };
        drop(guard);
        assert_eq!(wait(rx).await, None);
    }
}
