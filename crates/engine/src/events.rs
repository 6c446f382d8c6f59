//! The events bus: jobs publish Docker events; `GET /events` subscribers receive them.
//!
//! Recent events are kept in a bounded ring so that `since` can replay them, as dockerd
//! keeps its last events in memory.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_api::events::Event;
use tokio::sync::broadcast;

/// How many past events are kept for `since` replays: dockerd's 256.
const HISTORY: usize = 256;
/// How far a subscriber may fall behind before it misses events (dockerd buffers
/// 1024 per subscriber).
const BUFFER: usize = 1024;

#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    tx: broadcast::Sender<Event>,
    history: Mutex<VecDeque<Event>>,
    listeners: AtomicUsize,
    /// Every event published so far (`engine_daemon_events_total`).
    published: std::sync::atomic::AtomicU64,
}

/// A live subscription: the events published before it (for replay) and a receiver
/// for the ones after, with no gap and no duplicate between the two.
pub struct EventSubscription {
    pub history: Vec<Event>,
    pub rx: broadcast::Receiver<Event>,
    _guard: ListenerGuard,
}

struct ListenerGuard(Arc<BusInner>);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> EventBus {
        let (tx, _) = broadcast::channel(BUFFER);
        EventBus {
            inner: Arc::new(BusInner {
                tx,
                history: Mutex::new(VecDeque::with_capacity(HISTORY)),
                listeners: AtomicUsize::new(0),
                published: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Publishes an event stamped with the current time.
    pub fn publish(&self, typ: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) {
        self.publish_event(Event::new(typ, action, id, attributes, now_nanos()));
    }

    pub fn publish_event(&self, event: Event) {
        // The history lock is held while sending so that a subscriber never sees an
        // event both in its history and on its receiver.
        let mut h = self.inner.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(event.clone());
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        // No receivers is fine: nobody is listening.
        let _ = self.inner.tx.send(event);
    }

    pub fn subscribe(&self) -> EventSubscription {
        let h = self.inner.history.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.inner.tx.subscribe();
        self.inner.listeners.fetch_add(1, Ordering::Relaxed);
        EventSubscription {
            history: h.iter().cloned().collect(),
            rx,
            _guard: ListenerGuard(self.inner.clone()),
        }
    }

    /// How many clients are subscribed now (`NEventsListener` in `/info`).
    /// How many events have been published since the daemon started.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    pub fn listeners(&self) -> usize {
        self.inner.listeners.load(Ordering::Relaxed)
    }
}
