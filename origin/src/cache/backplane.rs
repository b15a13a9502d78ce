//! The backplane: Redis pub/sub that keeps every process's L1 in step. A `set`, `remove`,
//! pattern or tag invalidation on one process evicts the affected entries from every other
//! process's L1. A subscriber that loses its connection clears its L1 when it reconnects, since
//! it may have missed messages.

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use surge_shared::KeyPattern;

use super::Inner;
use super::stats::Stats;

/// The channel every process publishes on and listens to.
pub const CHANNEL: &str = "surge:v1:backplane";

/// What happened on another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// These keys changed or were removed.
    Evict {
        /// The keys.
        keys: Vec<String>,
    },
    /// Keys matching these patterns were removed.
    Patterns {
        /// The patterns.
        patterns: Vec<String>,
    },
    /// These tags now have these versions.
    Tags {
        /// Tag and new version.
        versions: Vec<(String, u64)>,
    },
}

/// A message on the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sending process (its own messages are ignored).
    pub from: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What a subscriber applies messages to.
pub trait Apply: Send + Sync + 'static {
    /// This process's id.
    fn id(&self) -> &str;
    /// Applies an event from another process.
    fn apply(&self, event: Event) -> impl Future<Output = ()> + Send;
    /// Forgets everything that messages could have invalidated (after a reconnect).
    fn resync(&self) -> impl Future<Output = ()> + Send;
}

/// Listens on [`CHANNEL`] until `target` is dropped, trying the nodes' `clients` in turn and
/// reconnecting after errors.
pub async fn subscribe<A: Apply>(clients: Vec<redis::Client>, target: Weak<A>) {
    let mut attempt = 0usize;
    let mut connected_before = false;
    loop {
        let Some(client) = clients.get(attempt % clients.len().max(1)) else {
            return;
        };
        attempt += 1;
        let pubsub = client.get_async_pubsub().await;
        let mut pubsub = match pubsub {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "backplane subscriber cannot connect");
                if target.upgrade().is_none() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        if pubsub.subscribe(CHANNEL).await.is_err() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        if connected_before {
            let Some(t) = target.upgrade() else { return };
            t.resync().await;
        }
        connected_before = true;
        let mut messages = pubsub.on_message();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(1), messages.next()).await;
            let Some(t) = target.upgrade() else { return };
            match next {
                Err(_) => continue,
                Ok(None) => break,
                Ok(Some(msg)) => {
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<Message>(&payload) {
                        Ok(m) if m.from != t.id() => t.apply(m.event).await,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring a malformed backplane message")
                        }
                    }
                }
            }
        }
    }
}

impl Inner {
    /// Tells every other process about `event` (nothing without L2).
    pub(super) async fn publish(&self, event: Event) {
        let Some(l2) = self.l2() else { return };
        let message = Message {
            from: self.config.instance.clone(),
            event,
        };
        if let Ok(payload) = serde_json::to_string(&message)
            && l2.publish(CHANNEL, &payload).await.is_some()
        {
            Stats::bump(&self.stats.backplane_sent);
        }
    }
}

impl Apply for Inner {
    fn id(&self) -> &str {
        &self.config.instance
    }

    async fn apply(&self, event: Event) {
        Stats::bump(&self.stats.backplane_received);
        match event {
            Event::Evict { keys } => {
                for key in keys {
                    self.l1.remove(&key).await;
                }
            }
            Event::Patterns { patterns } => {
                let parsed = patterns
                    .iter()
                    .filter_map(|p| KeyPattern::from_peer(p).ok());
                for p in parsed {
                    self.l1.remove_matching(move |k| p.matches(k)).await;
                }
            }
            Event::Tags { versions } => self.tags.set(&versions),
        }
    }

    async fn resync(&self) {
        self.l1.clear();
        self.tags.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_stable_json_form() {
        let m = Message {
            from: "pod-a".into(),
            event: Event::Evict {
                keys: vec!["k".into()],
            },
        };
        let json = serde_json::to_string(&m).expect("serialises");
        assert_eq!(json, r#"{"from":"pod-a","event":"evict","keys":["k"]}"#);
        assert_eq!(serde_json::from_str::<Message>(&json).ok(), Some(m));
    }
}
