//! In-process platform pieces: a bounded memory cache, a GCRA limiter over a map, the system
//! clock, and a task queue. Used by the wasi-http adapter and by native tests.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use surge_shared::CacheKey;
use surge_shared::freshness::millis;
use surge_shared::rate::{Decision, GcraState};

use crate::http::EdgeResponse;
use crate::seams::{Background, CacheStore, Clock, LimitScope, PlatformError, RateLimiter, Task};

/// The host's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(millis)
            .unwrap_or(0)
    }
}

/// A clock tests move by hand.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Rc<RefCell<u64>>);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn at(ms: u64) -> Self {
        Self(Rc::new(RefCell::new(ms)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.0.borrow_mut() += millis(by);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        *self.0.borrow()
    }
}

/// A memory cache holding at most `capacity` entries (oldest insert evicted first).
pub struct MemoryStore<C: Clock> {
    clock: C,
    capacity: usize,
    entries: RefCell<HashMap<CacheKey, (EdgeResponse, u64)>>,
    order: RefCell<VecDeque<CacheKey>>,
}

impl<C: Clock> MemoryStore<C> {
    /// An empty store.
    pub fn new(clock: C, capacity: usize) -> Self {
        Self {
            clock,
            capacity: capacity.max(1),
            entries: RefCell::new(HashMap::new()),
            order: RefCell::new(VecDeque::new()),
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored response for `key` with its metadata headers, for inspection.
    pub fn peek(&self, key: &CacheKey) -> Option<EdgeResponse> {
        self.entries.borrow().get(key).map(|(r, _)| r.clone())
    }
}

impl<C: Clock> CacheStore for MemoryStore<C> {
    async fn get(&self, key: &CacheKey) -> Result<Option<EdgeResponse>, PlatformError> {
        let now = self.clock.now_ms();
        let mut entries = self.entries.borrow_mut();
        match entries.get(key) {
            Some((response, expires)) if *expires > now => Ok(Some(response.clone())),
            Some(_) => {
                entries.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        key: &CacheKey,
        response: &EdgeResponse,
        keep_for: Duration,
    ) -> Result<(), PlatformError> {
        let expires = self.clock.now_ms().saturating_add(millis(keep_for));
        let mut entries = self.entries.borrow_mut();
        let mut order = self.order.borrow_mut();
        if entries
            .insert(key.clone(), (response.clone(), expires))
            .is_none()
        {
            order.push_back(key.clone());
        }
        while entries.len() > self.capacity {
            match order.pop_front() {
                Some(oldest) => {
                    entries.remove(&oldest);
                }
                None => break,
            }
        }
        Ok(())
    }
}

/// GCRA over an in-memory map: exact within one process.
pub struct MemoryLimiter<C: Clock> {
    clock: C,
    states: RefCell<HashMap<(String, String), GcraState>>,
}

impl<C: Clock> MemoryLimiter<C> {
    /// An empty limiter.
    pub fn new(clock: C) -> Self {
        Self {
            clock,
            states: RefCell::new(HashMap::new()),
        }
    }
}

impl<C: Clock> RateLimiter for MemoryLimiter<C> {
    async fn check(&self, scope: &LimitScope) -> Result<Decision, PlatformError> {
        let now_ns = self.clock.now_ms().saturating_mul(1_000_000);
        let mut states = self.states.borrow_mut();
        let slot = states
            .entry((scope.name.clone(), scope.key.clone()))
            .or_default();
        let (decision, next) = scope.quota.check(*slot, now_ns, 1);
        *slot = next;
        Ok(decision)
    }
}

/// Background tasks queued for the host to run (tests run them when they choose).
#[derive(Clone, Default)]
pub struct TaskQueue(Rc<RefCell<Vec<Task>>>);

impl TaskQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs every queued task (and any they queue) to completion.
    pub async fn run_all(&self) {
        loop {
            let tasks: Vec<Task> = std::mem::take(&mut *self.0.borrow_mut());
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                task.await;
            }
        }
    }

    /// Number of queued tasks.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Background for TaskQueue {
    fn spawn(&self, task: Task) {
        self.0.borrow_mut().push(task);
    }
}
