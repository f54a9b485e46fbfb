//! Leader election over a `coordination.k8s.io/v1` Lease, after client-go's
//! `tools/leaderelection`: of all the candidates sharing a Lease name, one holds it and runs
//! its work; the others wait until the holder stops renewing and the lease runs out.
//!
//! - A candidate reads the Lease every `retry_period` (jittered). It takes it when there is
//!   none (create), when it has no holder, or when the record has not changed for
//!   `leaseDurationSeconds` as measured by the candidate's own clock since it last saw the
//!   record change (so clocks of different machines never get compared).
//! - Taking or renewing is an update guarded by the `resourceVersion` read; losing that race (a
//!   409) means someone else got there first.
//! - The holder renews every `retry_period`; if no renewal has succeeded for `renew_deadline`
//!   (shorter than the lease duration) or someone else holds the Lease, leadership is lost: the
//!   work's own shutdown turns true and, once the work has returned, the candidate goes back to
//!   waiting for the Lease.
//! - On shutdown a holder releases the Lease (empty holder, 1 s duration) so another
//!   candidate — or this server started again — takes over at once.
//!
//! `rudder server` runs the controller manager under the Lease `kube-system/kube-controller-manager`
//! and the scheduler under `kube-system/kube-scheduler`.

use crate::Shutdown;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The namespace of the control plane's Leases.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// The controller manager's Lease.
pub const CONTROLLER_MANAGER_LEASE: &str = "kube-controller-manager";
/// The scheduler's Lease.
pub const SCHEDULER_LEASE: &str = "kube-scheduler";

/// How long a lease lasts and how often it is tried and renewed; upstream's defaults for the
/// controller manager and the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a non-holder waits after the last change it saw before taking the Lease.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// The interval between tries (and renewals).
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A candidate identity unique to this process: `<hostname>_<random uuid>`, as upstream's.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// The parts of a Lease's spec that make up upstream's leader election record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub holder: String,
    pub lease_duration_seconds: i32,
    pub acquire_time: Option<Timestamp>,
    pub renew_time: Option<Timestamp>,
    pub transitions: i32,
}

impl Record {
    /// The record a Lease spec holds.
    pub fn of(spec: Option<&LeaseSpec>) -> Record {
        let Some(s) = spec else { return Record::default() };
        Record {
            holder: s.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: s.lease_duration_seconds.unwrap_or(0),
            acquire_time: s.acquire_time.as_ref().map(|t| t.0),
            renew_time: s.renew_time.as_ref().map(|t| t.0),
            transitions: s.lease_transitions.unwrap_or(0),
        }
    }

    /// The Lease spec holding this record.
    pub fn spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: (!self.holder.is_empty()).then(|| self.holder.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.transitions),
            ..Default::default()
        }
    }
}

/// Whether `me` may write itself into a Lease holding `current`, which this candidate first
/// saw in its present state at `observed_at`: yes when nobody holds it, when `me` does, or when
/// it has not changed for its duration (`fallback` when the record has none).
pub fn may_take(current: &Record, me: &str, observed_at: Instant, now: Instant, fallback: Duration) -> bool {
    if current.holder.is_empty() || current.holder == me {
        return true;
    }
    let duration =
        u64::try_from(current.lease_duration_seconds).ok().filter(|s| *s > 0).map_or(fallback, Duration::from_secs);
    observed_at + duration <= now
}

/// The record `me` writes to take or renew a Lease holding `current`: a renewal keeps the
/// acquire time and transition count, a takeover starts a new term.
pub fn next_record(current: Option<&Record>, me: &str, duration: Duration, now: Timestamp) -> Record {
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
    match current {
        Some(c) if c.holder == me => Record {
            holder: me.to_string(),
            lease_duration_seconds: seconds,
            acquire_time: c.acquire_time.or(Some(now)),
            renew_time: Some(now),
            transitions: c.transitions,
        },
        Some(c) => Record {
            holder: me.to_string(),
            lease_duration_seconds: seconds,
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: c.transitions + 1,
        },
        None => Record {
            holder: me.to_string(),
            lease_duration_seconds: seconds,
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: 0,
        },
    }
}

/// One candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The last record seen and when (on this candidate's clock) it was first seen.
    observed: Option<(Record, Instant)>,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, timing: Timing) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timing,
            observed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn observe(&mut self, record: Record, now: Instant) -> Instant {
        match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                self.observed = Some((record, now));
                now
            }
        }
    }

    /// One try to take or renew the Lease: `Ok(true)` when this candidate holds it afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Instant::now();
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let record = next_record(None, &self.identity, self.timing.lease_duration, Timestamp::now());
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..Default::default() },
                spec: Some(record.spec()),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.observed = Some((record, now));
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = Record::of(lease.spec.as_ref());
        let observed_at = self.observe(current.clone(), now);
        if !may_take(&current, &self.identity, observed_at, now, self.timing.lease_duration) {
            return Ok(false);
        }
        let record = next_record(Some(&current), &self.identity, self.timing.lease_duration, Timestamp::now());
        let mut next = lease;
        next.spec = Some(record.spec());
        // `replace` sends the resourceVersion read: a 409 means another candidate wrote first.
        match self.api.replace(&self.name, &PostParams::default(), &next).await {
            Ok(_) => {
                self.observed = Some((record, now));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up if this candidate holds it: no holder, a 1 s duration, so the next
    /// candidate takes it at once.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let current = Record::of(lease.spec.as_ref());
        if current.holder != self.identity {
            return Ok(());
        }
        let now = Timestamp::now();
        let released = Record {
            holder: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(now),
            renew_time: Some(now),
            transitions: current.transitions,
        };
        let mut next = lease;
        next.spec = Some(released.spec());
        match self.api.replace(&self.name, &PostParams::default(), &next).await {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The pause before the next try while waiting: `retry_period` plus up to 1.2 times that
    /// (client-go's jitter), so candidates do not try in lockstep.
    fn jittered_retry(&self) -> Duration {
        self.timing.retry_period.mul_f64(1.0 + rand::random::<f64>() * 1.2)
    }

    /// Tries until this candidate holds the Lease (`true`) or `shutdown` turns true (`false`).
    pub async fn acquire(&mut self, shutdown: &mut Shutdown) -> bool {
        loop {
            if *shutdown.borrow() {
                return false;
            }
            match tokio::time::timeout(self.timing.renew_deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "acquired the lease");
                    return true;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::debug!(lease = %self.name, error = %e, "trying the lease"),
                Err(_) => tracing::debug!(lease = %self.name, "trying the lease timed out"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.jittered_retry()) => {}
                _ = stopped(shutdown) => return false,
            }
        }
    }
}

/// Resolves once `shutdown` turns true or its sender is gone (holding no borrow of the value,
/// so the future stays `Send`).
async fn stopped(shutdown: &mut Shutdown) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Runs `work` while this process (as `identity`) holds the Lease `namespace/name`, with
/// upstream's timing: see [`run_while_leading_with`].
pub async fn run_while_leading<F, Fut>(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    shutdown: Shutdown,
    work: F,
) -> anyhow::Result<()>
where
    F: FnMut(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    run_while_leading_with(client, namespace, name, identity, Timing::default(), shutdown, work).await
}

/// Waits for the Lease, then runs `work` with a shutdown of its own that turns true when
/// leadership is lost or `shutdown` turns true. After a loss the candidate waits for the
/// Lease again and calls `work` anew once it holds it. Returns when `shutdown` turns true
/// (releasing the Lease) or when `work` returns by itself while leading (its result).
pub async fn run_while_leading_with<F, Fut>(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
    timing: Timing,
    mut shutdown: Shutdown,
    mut work: F,
) -> anyhow::Result<()>
where
    F: FnMut(Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut elector = Elector::new(client, namespace, name, identity, timing);
    loop {
        if !elector.acquire(&mut shutdown).await {
            return Ok(());
        }
        let (stop_work, work_shutdown) = watch::channel(false);
        let mut task = tokio::spawn(work(work_shutdown));
        let mut last_renewed = Instant::now();
        let lost = loop {
            tokio::select! {
                result = &mut task => {
                    // The work ended on its own while leading: hand the Lease on.
                    let _ = elector.release().await;
                    return result.map_err(anyhow::Error::from)?;
                }
                _ = stopped(&mut shutdown) => {
                    let _ = stop_work.send(true);
                    let result = task.await;
                    if let Err(e) = elector.release().await {
                        tracing::debug!(lease = %name, error = %e, "releasing the lease");
                    }
                    return result.map_err(anyhow::Error::from)?;
                }
                _ = tokio::time::sleep(timing.retry_period) => {
                    match tokio::time::timeout(timing.renew_deadline, elector.try_acquire_or_renew()).await {
                        Ok(Ok(true)) => last_renewed = Instant::now(),
                        Ok(Ok(false)) => break "another candidate holds the lease",
                        Ok(Err(e)) => tracing::debug!(lease = %name, error = %e, "renewing the lease"),
                        Err(_) => tracing::debug!(lease = %name, "renewing the lease timed out"),
                    }
                    if last_renewed.elapsed() >= timing.renew_deadline {
                        break "the lease could not be renewed in time";
                    }
                }
            }
        };
        tracing::warn!(lease = %name, identity = %identity, "leader election lost: {lost}; stopping");
        let _ = stop_work.send(true);
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(lease = %name, "work stopped with an error after losing the lease: {e:#}"),
            Err(e) => tracing::warn!(lease = %name, "work failed after losing the lease: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn held_by(holder: &str) -> Record {
        Record {
            holder: holder.into(),
            lease_duration_seconds: 15,
            acquire_time: Some(ts(100)),
            renew_time: Some(ts(110)),
            transitions: 3,
        }
    }

    #[test]
    fn identity_is_host_and_random_suffix() {
        let a = default_identity();
        let b = default_identity();
        assert_ne!(a, b);
        let (host, suffix) = a.rsplit_once('_').unwrap();
        assert!(!host.is_empty());
        assert_eq!(suffix.len(), 36);
    }

    #[test]
    fn others_wait_for_the_lease_to_run_out_on_their_own_clock() {
        // A fake clock: instants are passed in, never read.
        let seen = Instant::now();
        let at = |secs: u64| seen + Duration::from_secs(secs);
        let fallback = Duration::from_secs(15);
        let lease = held_by("a");
        // Another holder: not before 15 s after this candidate saw the record change.
        assert!(!may_take(&lease, "b", seen, seen, fallback));
        assert!(!may_take(&lease, "b", seen, at(14), fallback));
        assert!(may_take(&lease, "b", seen, at(15), fallback));
        // The holder itself and an empty holder: at once.
        assert!(may_take(&lease, "a", seen, seen, fallback));
        assert!(may_take(&held_by(""), "b", seen, seen, fallback));
        // A record without a duration uses ours.
        let mut no_duration = held_by("a");
        no_duration.lease_duration_seconds = 0;
        assert!(!may_take(&no_duration, "b", seen, seen + Duration::from_secs(14), fallback));
        assert!(may_take(&no_duration, "b", seen, seen + Duration::from_secs(15), fallback));
    }

    #[test]
    fn renewals_keep_the_term_and_takeovers_start_one() {
        let d = Duration::from_secs(15);
        let renewed = next_record(Some(&held_by("a")), "a", d, ts(120));
        assert_eq!(renewed.acquire_time, Some(ts(100)));
        assert_eq!(renewed.renew_time, Some(ts(120)));
        assert_eq!(renewed.transitions, 3);
        let taken = next_record(Some(&held_by("a")), "b", d, ts(130));
        assert_eq!(taken.holder, "b");
        assert_eq!(taken.acquire_time, Some(ts(130)));
        assert_eq!(taken.transitions, 4);
        assert_eq!(taken.lease_duration_seconds, 15);
        let first = next_record(None, "a", d, ts(1));
        assert_eq!((first.transitions, first.acquire_time), (0, Some(ts(1))));
    }

    #[test]
    fn records_round_trip_through_lease_specs() {
        let r = held_by("a");
        assert_eq!(Record::of(Some(&r.spec())), r);
        let released = Record { holder: String::new(), ..held_by("") };
        assert_eq!(released.spec().holder_identity, None);
        assert_eq!(Record::of(None), Record::default());
    }
}
