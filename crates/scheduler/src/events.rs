//! An `events.k8s.io/v1` event recorder that costs the same for the ten-thousandth event as for
//! the first.
//!
//! It writes what kube-runtime's `events::Recorder` writes (the same Event objects; a repeat of
//! an event — same type, action, reason, reporter, regarding and related object — within six
//! minutes becomes a merge patch that raises its `series.count`), but it forgets expired events
//! from the front of a queue ordered by time instead of scanning the whole cache under a lock on
//! every event, which made `n` events cost `n²` (each `Scheduled` event regards a different pod,
//! so every one stays cached for the six minutes).

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, Resource};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How long a published event is remembered for repeats (kube-runtime's and upstream's TTL).
const CACHE_TTL: SignedDuration = SignedDuration::from_secs(6 * 60);

/// Publishes events for one reporting controller. Clones share the cache.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    cache: Arc<parking_lot::Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    /// Event key → the event as last written.
    events: HashMap<String, K8sEvent>,
    /// (when an event was last written, its key), oldest first; an entry whose event was
    /// written again since is stale and skipped.
    order: VecDeque<(Timestamp, String)>,
}

impl Cache {
    fn forget_expired(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.order.front() {
            if *at + CACHE_TTL > now {
                break;
            }
            let (at, key) = self.order.pop_front().expect("there is a front");
            if self.events.get(&key).is_some_and(|e| last_observed(e) == Some(at)) {
                self.events.remove(&key);
            }
        }
    }
}

fn last_observed(e: &K8sEvent) -> Option<Timestamp> {
    match &e.series {
        Some(s) => Some(s.last_observed_time.0),
        None => e.event_time.as_ref().map(|t| t.0),
    }
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

fn push_reference(key: &mut String, r: Option<&ObjectReference>) {
    let Some(r) = r else {
        key.push_str("\u{1}-");
        return;
    };
    for part in [&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid, &r.resource_version, &r.field_path] {
        key.push('\u{1}');
        key.push_str(part.as_deref().unwrap_or(""));
    }
}

impl Recorder {
    /// A recorder reporting as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Recorder {
        Recorder { client, reporter, cache: Default::default() }
    }

    fn key(&self, ev: &Event, regarding: &ObjectReference) -> String {
        let mut key = String::with_capacity(256);
        for part in [type_name(ev.type_), &ev.action, &ev.reason, &self.reporter.controller] {
            key.push_str(part);
            key.push('\u{1}');
        }
        key.push_str(self.reporter.instance.as_deref().unwrap_or("\u{2}"));
        push_reference(&mut key, Some(regarding));
        push_reference(&mut key, ev.secondary.as_ref());
        key
    }

    fn new_event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let name = regarding.name.as_ref().unwrap_or(&self.reporter.controller);
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                ..Default::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter.instance.clone().unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            series: None,
            type_: Some(type_name(ev.type_).into()),
            related: ev.secondary.clone(),
            ..Default::default()
        }
    }

    /// Publishes `ev` about `regarding`: a new Event, or a repeat of one published within the
    /// last six minutes (its series count goes up).
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = self.key(ev, regarding);
        let event = {
            let mut cache = self.cache.lock();
            cache.forget_expired(now);
            match cache.events.get(&key) {
                Some(e) => {
                    let count = e.series.as_ref().map_or(2, |s| s.count + 1);
                    let mut e = e.clone();
                    e.series = Some(EventSeries { count, last_observed_time: MicroTime(now) });
                    e
                }
                None => self.new_event(ev, regarding, now),
            }
        };
        // The Event sent back is not decoded: nothing here reads it.
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let request = Request::new(K8sEvent::url_path(&(), Some(namespace)));
        let request = if event.series.is_some() {
            let name = event.metadata.name.as_deref().unwrap_or_default();
            request.patch(name, &PatchParams::default(), &Patch::Merge(&event))
        } else {
            let body = serde_json::to_vec(&event).map_err(kube::Error::SerdeError)?;
            request.create(&PostParams::default(), body)
        };
        self.client.request_text(request.map_err(kube::Error::BuildRequest)?).await?;
        let mut cache = self.cache.lock();
        cache.order.push_back((now, key.clone()));
        cache.events.insert(key, event);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: Timestamp, series: Option<Timestamp>) -> K8sEvent {
        K8sEvent {
            event_time: Some(MicroTime(at)),
            series: series.map(|t| EventSeries { count: 2, last_observed_time: MicroTime(t) }),
            ..Default::default()
        }
    }

    #[test]
    fn expired_events_are_forgotten_from_the_front_and_repeats_live_on() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let later = |secs: i64| t0 + SignedDuration::from_secs(secs);
        let mut cache = Cache::default();
        for (key, at) in [("a", t0), ("b", later(10)), ("c", later(20))] {
            cache.events.insert(key.into(), event(at, None));
            cache.order.push_back((at, key.into()));
        }
        // "a" repeats at t0 + 30 s: its first queue entry is stale from then on.
        cache.events.insert("a".into(), event(t0, Some(later(30))));
        cache.order.push_back((later(30), "a".into()));

        cache.forget_expired(later(375));
        let mut left: Vec<&str> = cache.events.keys().map(String::as_str).collect();
        left.sort();
        assert_eq!(left, ["a", "c"], "b expired; a was seen again since");
        cache.forget_expired(later(391));
        assert!(cache.events.is_empty());
        assert!(cache.order.is_empty());
    }
}
