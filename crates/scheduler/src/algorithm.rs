//! One scheduling decision over the cache: filter nodes, score the feasible ones, pick the
//! best (ties broken at random), and the upstream-shaped message when nothing fits.

use crate::cache::{Cache, NodeInfo};
use crate::framework::{
    AFFINITY_COUNTS, Code, CycleState, FilterPlugin, IMAGE_NODES, NAMESPACE_LABELS, PodInfo, PreFilter, ScorePlugin,
    Status,
};
use crate::plugins;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rand::Rng;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The message upstream uses when the cluster has no nodes at all.
pub const NO_NODES_MESSAGE: &str = "no nodes available to schedule pods";

/// Preemption note for pods with `preemptionPolicy: Never`.
pub const NOT_ELIGIBLE_NEVER: &str = "not eligible due to preemptionPolicy=Never.";
/// Preemption note for a pod whose earlier victims are still terminating.
pub const NOT_ELIGIBLE_TERMINATING: &str = "not eligible due to a terminating pod on the nominated node.";

/// Why a pod fits no node.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleError {
    /// There are no nodes.
    NoNodes,
    /// Every node was rejected.
    Unfit(FitError),
}

impl ScheduleError {
    /// The text for the `PodScheduled` condition and the `FailedScheduling` event.
    pub fn message(&self) -> String {
        match self {
            ScheduleError::NoNodes => NO_NODES_MESSAGE.to_string(),
            ScheduleError::Unfit(e) => e.message(),
        }
    }

    /// Plugins that rejected the pod somewhere (empty: any cluster change may help).
    pub fn rejected_by(&self) -> HashSet<&'static str> {
        match self {
            ScheduleError::NoNodes => HashSet::new(),
            ScheduleError::Unfit(e) => e.statuses.iter().map(|(_, s)| s.plugin).collect(),
        }
    }
}

/// Every node's rejection of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub statuses: Vec<(String, Status)>,
    /// Why the pod may not preempt, if it may not (e.g. `preemptionPolicy: Never`).
    pub preemption_ineligible: Option<&'static str>,
    /// Set when preemption found room on this node (the message then has no preemption part).
    pub nominated_node: Option<String>,
}

/// "N reason" entries, sorted as strings, as upstream prints its reason histogram.
fn histogram<'a>(reasons: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reasons {
        *counts.entry(r).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

impl FitError {
    /// `0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu.
    /// preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.`
    pub fn message(&self) -> String {
        let reasons = self.statuses.iter().flat_map(|(_, s)| s.reasons.iter().map(String::as_str));
        let mut msg = format!("0/{} nodes are available: {}.", self.num_all_nodes, histogram(reasons));
        if self.nominated_node.is_some() {
            return msg;
        }
        if let Some(why) = self.preemption_ineligible {
            msg.push_str(&format!(" preemption: {why}"));
            return msg;
        }
        // Preemption is tried only on nodes rejected for reasons that removing pods can fix;
        // when it finds nothing, those nodes report no victims.
        let preemption = self.statuses.iter().map(|(_, s)| match s.code {
            Code::UnschedulableAndUnresolvable => "Preemption is not helpful for scheduling",
            Code::Unschedulable => "No preemption victims found for incoming pod.",
        });
        msg.push_str(&format!(" preemption: 0/{} nodes are available: {}.", self.num_all_nodes, histogram(preemption)));
        msg
    }
}

/// How many feasible nodes are enough before scoring (upstream's adaptive percentage:
/// all nodes below 100, else 50% minus 1% per 125 nodes, at least 5% and at least 100).
pub fn feasible_nodes_to_find(all: usize) -> usize {
    if all < 100 {
        return all;
    }
    let percentage = 50usize.saturating_sub(all / 125).max(5);
    (all * percentage / 100).max(100)
}

/// Below this many nodes (to filter, or feasible nodes to score) a cycle runs on the calling
/// thread only: per-node filter and score work is a few microseconds, so starting workers
/// costs more than it saves on small clusters.
pub const PARALLEL_MIN_NODES: usize = 1000;

/// Parallel evaluation is on by default only with at least this many CPUs: on two cores
/// (shared with the API server and controllers in one process) it measured slower.
pub const PARALLEL_MIN_CPUS: usize = 4;

/// The default for `Framework::with_parallel_min_nodes`.
fn default_parallel_min_nodes() -> usize {
    if workers() >= PARALLEL_MIN_CPUS { PARALLEL_MIN_NODES } else { usize::MAX }
}

/// Nodes a filter worker takes at a time.
const FILTER_CHUNK: usize = 64;

/// Feasible nodes a score worker takes at a time.
const SCORE_CHUNK: usize = 64;

/// Worker threads for a parallel phase: the machine's parallelism, at most 16.
fn workers() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(16))
}

/// Runs `work(c)` for chunks `c = 0, 1, ..` handed out in order to the calling thread plus
/// `threads - 1` scoped helpers, until all `chunks` are handed out or `enough()` holds.
/// Returns the results of the chunks that ran, in chunk order (always a prefix of
/// `0..chunks`). The calling thread works too, so a helper the OS does not run promptly
/// delays the phase by one chunk at most.
fn run_chunks<T: Send>(
    chunks: usize,
    threads: usize,
    enough: impl Fn() -> bool + Sync,
    work: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut mine = Vec::new();
        while !enough() {
            let c = next.fetch_add(1, Ordering::AcqRel);
            if c >= chunks {
                break;
            }
            mine.push((c, work(c)));
        }
        mine
    };
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
        let mut done = worker();
        for h in helpers {
            done.extend(h.join().expect("scheduler worker panicked"));
        }
        done
    });
    done.sort_by_key(|(c, _)| *c);
    done.into_iter().map(|(_, t)| t).collect()
}

/// The filter and score plugins, and where the next search starts (nodes are searched
/// round-robin so that a partial search does not always favour the same nodes).
pub struct Framework {
    filters: Vec<Box<dyn FilterPlugin>>,
    scorers: Vec<(Box<dyn ScorePlugin>, i64)>,
    next_start: AtomicUsize,
    /// Clusters (and feasible sets) at least this big are evaluated on worker threads.
    parallel_min_nodes: usize,
}

impl Default for Framework {
    fn default() -> Self {
        Framework::new(plugins::default_filters(), plugins::default_scorers())
    }
}

impl Framework {
    pub fn new(filters: Vec<Box<dyn FilterPlugin>>, scorers: Vec<(Box<dyn ScorePlugin>, i64)>) -> Framework {
        Framework {
            filters,
            scorers,
            next_start: AtomicUsize::new(0),
            parallel_min_nodes: default_parallel_min_nodes(),
        }
    }

    /// Sets the node count from which filtering and scoring use worker threads
    /// (`usize::MAX`: never).
    pub fn with_parallel_min_nodes(mut self, n: usize) -> Framework {
        self.parallel_min_nodes = n;
        self
    }

    /// Runs the filters in order; the first rejection decides, as upstream.
    pub fn run_filters(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
        self.filters.iter().try_for_each(|f| f.filter(state, pod, node))
    }

    /// Runs every pre-filter; returns the filters that still have to run on each node (in
    /// order), without those whose pre-filter found they accept every node.
    pub fn pre_filter(&self, pod: &PodInfo, nodes: &[&NodeInfo], state: &mut CycleState) -> Vec<&dyn FilterPlugin> {
        let mut active = Vec::with_capacity(self.filters.len());
        for f in &self.filters {
            if f.pre_filter(pod, nodes, state) == PreFilter::Run {
                active.push(f.as_ref());
            }
        }
        active
    }

    /// Weighted sum of the normalised scores of each feasible node.
    pub fn score(&self, pod: &PodInfo, all_nodes: &[&NodeInfo], nodes: &[&NodeInfo]) -> Vec<i64> {
        self.score_nodes(pod, all_nodes, nodes, false)
    }

    /// `score`, with the raw per-node scores computed on worker threads when `parallel`
    /// (the result is the same either way).
    pub fn score_nodes(&self, pod: &PodInfo, all_nodes: &[&NodeInfo], nodes: &[&NodeInfo], parallel: bool) -> Vec<i64> {
        self.score_with(CycleState::new(), pod, all_nodes, nodes, parallel)
    }

    /// `score_nodes` starting from `state` (facts the framework provides to the pre-scores).
    fn score_with(
        &self,
        mut state: CycleState,
        pod: &PodInfo,
        all_nodes: &[&NodeInfo],
        nodes: &[&NodeInfo],
        parallel: bool,
    ) -> Vec<i64> {
        // Scores every feasible node gets alike, by plugin; the others are computed per node.
        let uniform: Vec<Option<i64>> =
            self.scorers.iter().map(|(plugin, _)| plugin.pre_score(pod, nodes, all_nodes, &mut state)).collect();
        let active: Vec<&dyn ScorePlugin> =
            self.scorers.iter().zip(&uniform).filter(|(_, u)| u.is_none()).map(|((p, _), _)| p.as_ref()).collect();
        let width = active.len();
        // raw[node * width + active plugin]
        let score_into = |nodes: &[&NodeInfo], out: &mut Vec<i64>| {
            for node in nodes {
                out.extend(active.iter().map(|p| p.score(&state, pod, node)));
            }
        };
        let raw: Vec<i64> = if width == 0 {
            Vec::new()
        } else if parallel && workers() > 1 {
            let chunks = nodes.len().div_ceil(SCORE_CHUNK);
            let work = |c: usize| -> Vec<i64> {
                let part = &nodes[c * SCORE_CHUNK..((c + 1) * SCORE_CHUNK).min(nodes.len())];
                let mut out = Vec::with_capacity(part.len() * width);
                score_into(part, &mut out);
                out
            };
            run_chunks(chunks, workers().min(chunks), || false, work).concat()
        } else {
            let mut out = Vec::with_capacity(nodes.len() * width);
            score_into(nodes, &mut out);
            out
        };
        let mut total = vec![0i64; nodes.len()];
        // What the plugins that score every node alike add to each node.
        let mut shared = 0;
        let mut column = vec![0i64; if width == 0 { 0 } else { nodes.len() }];
        let mut next_active = 0;
        for ((plugin, weight), uniform) in self.scorers.iter().zip(&uniform) {
            match uniform {
                Some(raw_score) => {
                    let mut one = [*raw_score];
                    plugin.normalize(&mut one);
                    shared += one[0] * weight;
                }
                None => {
                    for (slot, row) in column.iter_mut().zip(raw.chunks_exact(width)) {
                        *slot = row[next_active];
                    }
                    next_active += 1;
                    plugin.normalize(&mut column);
                    for (t, s) in total.iter_mut().zip(&column) {
                        *t += s * weight;
                    }
                }
            }
        }
        if shared != 0 {
            total.iter_mut().for_each(|t| *t += shared);
        }
        total
    }

    /// Runs `filters` on one node, with the pods nominated to it (of at least the pod's
    /// priority) added when `nominations` says the cache has any.
    fn filter_node(
        &self,
        filters: &[&dyn FilterPlugin],
        state: &CycleState,
        pod: &PodInfo,
        cache: &Cache,
        node: &NodeInfo,
        nominations: bool,
    ) -> Result<(), Status> {
        if nominations {
            let nominated = cache.nominated_on(node.name(), pod.priority, &pod.key);
            if !nominated.is_empty() {
                let mut with_nominated = node.clone();
                nominated.into_iter().for_each(|p| with_nominated.add_pod(p));
                return filters.iter().try_for_each(|f| f.filter(state, pod, &with_nominated));
            }
        }
        filters.iter().try_for_each(|f| f.filter(state, pod, node))
    }

    /// Walks the nodes round-robin from `start` until `wanted` feasible nodes are found (or
    /// all are examined), running `filters` (see [`Framework::pre_filter`]). Returns the
    /// feasible nodes, the rejections met on the way, and how many nodes were examined. With
    /// `parallel`, fixed-size chunks of the walk are handed in order to worker threads, and no
    /// further chunk is handed out once enough feasible nodes are known; since handed-out
    /// chunks always form a prefix of the walk, replaying their verdicts in order gives
    /// exactly the sequential answer.
    #[allow(clippy::too_many_arguments)]
    pub fn find_feasible<'a>(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        nodes: &[&'a NodeInfo],
        state: &CycleState,
        filters: &[&dyn FilterPlugin],
        start: usize,
        wanted: usize,
        parallel: bool,
    ) -> (Vec<&'a NodeInfo>, Vec<(String, Status)>, usize) {
        let all = nodes.len();
        let start = start % all.max(1);
        // The i-th node of the walk (`i < all`), without a division per node.
        let at = |i: usize| nodes[if start + i >= all { start + i - all } else { start + i }];
        let nominations = cache.has_nominations();
        let threads = workers().min(all.div_ceil(FILTER_CHUNK));
        let verdicts: Vec<Result<(), Status>> = if parallel && threads > 1 {
            let chunks = all.div_ceil(FILTER_CHUNK);
            let found = AtomicUsize::new(0);
            let work = |c: usize| -> Vec<Result<(), Status>> {
                let part: Vec<_> = (c * FILTER_CHUNK..((c + 1) * FILTER_CHUNK).min(all))
                    .map(|i| self.filter_node(filters, state, pod, cache, at(i), nominations))
                    .collect();
                found.fetch_add(part.iter().filter(|v| v.is_ok()).count(), Ordering::AcqRel);
                part
            };
            run_chunks(chunks, threads, || found.load(Ordering::Acquire) >= wanted, work)
                .into_iter()
                .flatten()
                .collect()
        } else {
            Vec::new()
        };
        let mut feasible = Vec::with_capacity(wanted.min(all));
        let mut statuses = Vec::new();
        let mut examined = 0;
        let mut precomputed = verdicts.into_iter();
        for i in 0..all {
            let node = at(i);
            let verdict = if parallel && threads > 1 {
                // Chunks form a prefix; running out means enough were found earlier.
                match precomputed.next() {
                    Some(v) => v,
                    None => break,
                }
            } else {
                self.filter_node(filters, state, pod, cache, node, nominations)
            };
            examined += 1;
            match verdict {
                Ok(()) => {
                    feasible.push(node);
                    if feasible.len() >= wanted {
                        break;
                    }
                }
                Err(status) => statuses.push((node.name().to_string(), status)),
            }
        }
        (feasible, statuses, examined)
    }

    /// Picks a node for the pod.
    pub fn schedule(&self, pod: &PodInfo, cache: &Cache, rng: &mut impl Rng) -> Result<String, ScheduleError> {
        let nodes: Vec<&NodeInfo> = cache.nodes().collect();
        let all = nodes.len();
        if all == 0 {
            return Err(ScheduleError::NoNodes);
        }
        let mut state = CycleState::new();
        state.insert(NAMESPACE_LABELS, Box::new(cache.namespaces()));
        state.insert(AFFINITY_COUNTS, Box::new(cache.affinity_counts()));
        let filters = self.pre_filter(pod, &nodes, &mut state);
        let wanted = feasible_nodes_to_find(all);
        let start = self.next_start.load(Ordering::Relaxed) % all;
        let parallel = all >= self.parallel_min_nodes;
        let (feasible, statuses, examined) =
            self.find_feasible(pod, cache, &nodes, &state, &filters, start, wanted, parallel);
        self.next_start.store((start + examined) % all, Ordering::Relaxed);
        match feasible.len() {
            0 => {
                let never = pod.pod.spec.as_ref().and_then(|s| s.preemption_policy.as_deref()) == Some("Never");
                let preemption_ineligible = never.then_some(NOT_ELIGIBLE_NEVER);
                Err(ScheduleError::Unfit(FitError {
                    num_all_nodes: all,
                    statuses,
                    preemption_ineligible,
                    nominated_node: None,
                }))
            }
            1 => Ok(feasible[0].name().to_string()),
            _ => {
                let mut score_state = CycleState::new();
                score_state.insert(NAMESPACE_LABELS, Box::new(cache.namespaces()));
                score_state.insert(AFFINITY_COUNTS, Box::new(cache.affinity_counts()));
                score_state.insert(IMAGE_NODES, Box::new(cache.image_nodes()));
                let parallel = feasible.len() >= self.parallel_min_nodes;
                let scores = self.score_with(score_state, pod, &nodes, &feasible, parallel);
                Ok(feasible[select_best(&scores, rng)].name().to_string())
            }
        }
    }
}

/// Lower-priority pods whose removal from one node lets the preemptor fit there.
#[derive(Debug, Clone)]
pub struct Preemption {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
    /// How many victims a PodDisruptionBudget does not allow to go.
    pub pdb_violations: usize,
}

/// Splits `pods` (most important first) into those whose eviction a PodDisruptionBudget
/// forbids and the others, as upstream's preemption does: each matching budget (same
/// namespace, non-empty selector, the pod not already in its `disruptedPods`) lends one of its
/// `disruptionsAllowed` per pod; a pod that finds a budget exhausted is violating.
pub fn split_by_pdb(pods: Vec<Arc<PodInfo>>, pdbs: &[PodDisruptionBudget]) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> =
        pdbs.iter().map(|b| b.status.as_ref().map(|s| s.disruptions_allowed).unwrap_or(0)).collect();
    let (mut violating, mut other) = (Vec::new(), Vec::new());
    for p in pods {
        let meta = &p.pod.metadata;
        let mut violated = false;
        if let Some(labels) = meta.labels.as_ref().filter(|l| !l.is_empty()) {
            for (i, pdb) in pdbs.iter().enumerate() {
                if pdb.metadata.namespace != meta.namespace {
                    continue;
                }
                let Some(selector) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else { continue };
                let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
                    && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty());
                if empty || !crate::selectors::selector_matches(selector, labels) {
                    continue;
                }
                let disrupted = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
                if meta.name.as_ref().is_some_and(|n| disrupted.is_some_and(|d| d.contains_key(n))) {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violated = true;
                }
            }
        }
        if violated { violating.push(p) } else { other.push(p) }
    }
    (violating, other)
}

impl Framework {
    /// Finds the node where evicting the fewest, least important lower-priority pods makes
    /// room for `pod` (upstream's default preemption): only nodes that failed for resolvable
    /// reasons are tried; on each, every lower-priority pod is removed, then pods are given
    /// back while the preemptor still fits, first those a PodDisruptionBudget protects, then
    /// the others, each group from the most important down. Nodes are ranked by the number of
    /// budget violations, then the highest victim priority, the sum of victim priorities and
    /// the number of victims.
    pub fn find_preemption(
        &self,
        pod: &PodInfo,
        cache: &Cache,
        fit: &FitError,
        pdbs: &[PodDisruptionBudget],
    ) -> Option<Preemption> {
        if fit.preemption_ineligible.is_some() {
            return None;
        }
        let nodes: Vec<&NodeInfo> = cache.nodes().collect();
        let mut state = CycleState::new();
        state.insert(NAMESPACE_LABELS, Box::new(cache.namespaces()));
        state.insert(AFFINITY_COUNTS, Box::new(cache.affinity_counts()));
        self.pre_filter(pod, &nodes, &mut state);
        // Filters that count other pods (inter-pod affinity, spread) must see the victims gone:
        // their pre-filter state is computed again over the nodes with the candidate replaced.
        let hard_spread = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.when_unsatisfiable == "DoNotSchedule"));
        let refresh =
            pod.has_pod_affinity_terms || hard_spread || nodes.iter().any(|n| n.pods_with_required_anti_affinity > 0);
        let fits = |sim: &NodeInfo| -> bool {
            if !refresh {
                return self.run_filters(&state, pod, sim).is_ok();
            }
            let view: Vec<&NodeInfo> = nodes.iter().map(|n| if n.name() == sim.name() { sim } else { *n }).collect();
            let mut fresh = CycleState::new();
            fresh.insert(NAMESPACE_LABELS, Box::new(cache.namespaces()));
            self.pre_filter(pod, &view, &mut fresh);
            self.run_filters(&fresh, pod, sim).is_ok()
        };
        // As upstream's dry run: enough candidates once at least one violates no budget and
        // there are 10% of the nodes (at least 100) in all.
        let enough = (nodes.len() / 10).max(100);
        let (mut candidates, mut clean) = (0usize, 0usize);
        let mut best: Option<(CandidateRank, Preemption)> = None;
        // The search starts at a random node, as upstream's, so that when it stops early the
        // same few nodes are not always the ones preempted.
        let offset = if fit.statuses.is_empty() { 0 } else { rand::rng().random_range(0..fit.statuses.len()) };
        let (tail, head) = fit.statuses.split_at(offset);
        let now = k8s_openapi::jiff::Timestamp::now();
        for (name, status) in head.iter().chain(tail) {
            if clean > 0 && candidates >= enough {
                break;
            }
            if status.code != Code::Unschedulable {
                continue;
            }
            let Some(node) = cache.node(name) else { continue };
            let mut lower: Vec<Arc<PodInfo>> = node
                .pods
                .values()
                .filter(|p| p.priority < pod.priority && p.pod.metadata.deletion_timestamp.is_none())
                .cloned()
                .collect();
            if lower.is_empty() {
                continue;
            }
            let mut sim = node.clone();
            for p in &lower {
                sim.remove_pod(&p.key);
            }
            if !fits(&sim) {
                continue;
            }
            lower.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.key.cmp(&b.key)));
            let (violating, other) = split_by_pdb(lower, pdbs);
            let mut victims = Vec::new();
            let mut pdb_violations = 0;
            for (p, protected) in violating.into_iter().map(|p| (p, true)).chain(other.into_iter().map(|p| (p, false)))
            {
                sim.add_pod(p.clone());
                if !fits(&sim) {
                    sim.remove_pod(&p.key);
                    victims.push(p);
                    pdb_violations += usize::from(protected);
                }
            }
            victims.sort_by(|a, b| b.priority.cmp(&a.priority).then_with(|| a.key.cmp(&b.key)));
            let highest = victims.iter().map(|v| v.priority).max();
            let rank = CandidateRank {
                pdb_violations,
                highest_priority: highest.map_or(i64::MIN, i64::from),
                priority_sum: victims.iter().map(|v| i64::from(v.priority)).sum::<i64>(),
                victims: victims.len(),
                // The latest earliest start among the most important victims is preferred.
                earliest_start: std::cmp::Reverse(
                    victims
                        .iter()
                        .filter(|v| Some(v.priority) == highest)
                        .map(|v| start_time(&v.pod, now))
                        .min()
                        .unwrap_or(now),
                ),
                node: name.clone(),
            };
            candidates += 1;
            clean += usize::from(pdb_violations == 0);
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((rank, Preemption { node: name.clone(), victims, pdb_violations }));
            }
        }
        best.map(|(_, p)| p)
    }
}

/// How preemption candidates compare (smaller is better), as upstream's
/// `pickOneNodeForPreemption`: fewest budget violations, lowest highest victim priority, lowest
/// sum of victim priorities, fewest victims, the latest start among the highest-priority
/// victims; the node name last, so that the choice does not depend on the search order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CandidateRank {
    pdb_violations: usize,
    highest_priority: i64,
    priority_sum: i64,
    victims: usize,
    earliest_start: std::cmp::Reverse<k8s_openapi::jiff::Timestamp>,
    node: String,
}

/// When a pod started (`status.startTime`); one not started yet counts as starting `now`, as
/// upstream's `GetPodStartTime`.
fn start_time(pod: &Pod, now: k8s_openapi::jiff::Timestamp) -> k8s_openapi::jiff::Timestamp {
    pod.status.as_ref().and_then(|s| s.start_time.as_ref()).map_or(now, |t| t.0)
}

/// Index of the highest score; among equal scores each is equally likely.
pub fn select_best(scores: &[i64], rng: &mut impl Rng) -> usize {
    let mut best = 0;
    let mut ties = 0u32;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
            ties = 1;
        } else if *s == scores[best] {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::pod_requesting;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use rand::SeedableRng;
    use serde_json::{Value, json};

    fn node(name: &str, cpu: &str, extra: Value) -> Node {
        let mut v = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"}}});
        if let Some(spec) = extra.get("spec") {
            v["spec"] = spec.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn cluster() -> Cache {
        let mut cache = Cache::new();
        cache.upsert_node(node(
            "n1",
            "2",
            json!({"spec": {"taints": [{"key": "key", "value": "value", "effect": "NoSchedule"}]}}),
        ));
        cache.upsert_node(node("n2", "2", json!({})));
        cache.upsert_node(node("n3", "2", json!({})));
        cache
    }

    #[test]
    fn message_has_upstream_shape() {
        let f = Framework::default();
        let p = pod_requesting("big", "3", "0");
        let err = f.schedule(&p, &cluster(), &mut rng()).unwrap_err();
        assert_eq!(
            err.message(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        assert_eq!(err.rejected_by(), HashSet::from(["TaintToleration", "NodeResourcesFit"]));

        // Resolvable shortage: preemption would be tried but finds no victims.
        let mut cache = Cache::new();
        cache.upsert_node(node("n1", "2", json!({})));
        cache.assume(Arc::new(pod_requesting("a", "2", "0")), "n1");
        let err = f.schedule(&pod_requesting("b", "1", "0"), &cache, &mut rng()).unwrap_err();
        assert_eq!(
            err.message(),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
        );
        assert_eq!(f.schedule(&p, &Cache::new(), &mut rng()), Err(ScheduleError::NoNodes));
    }

    #[test]
    fn scheduling_cycle_fills_nodes_and_honours_assumed_pods() {
        let f = Framework::default();
        let mut cache = cluster();
        let mut placed: BTreeMap<String, usize> = BTreeMap::new();
        // 1.5 cpu each: one per untainted node, then nothing fits.
        for i in 0..3 {
            let p = Arc::new(pod_requesting(&format!("p{i}"), "1500m", "1Gi"));
            match f.schedule(&p, &cache, &mut rng()) {
                Ok(n) => {
                    *placed.entry(n.clone()).or_default() += 1;
                    cache.assume(p, &n);
                }
                Err(e) => {
                    assert_eq!(i, 2);
                    assert!(e.message().starts_with(
                        "0/3 nodes are available: 1 node(s) had untolerated taint {key: value}, 2 Insufficient cpu."
                    ));
                }
            }
        }
        assert_eq!(placed, BTreeMap::from([("n2".to_string(), 1), ("n3".to_string(), 1)]));
        // Forgetting an assumed pod frees its node again.
        cache.forget("default/p0");
        assert!(f.schedule(&pod_requesting("p9", "1500m", "1Gi"), &cache, &mut rng()).is_ok());
    }

    #[test]
    fn prefers_the_least_allocated_node_and_breaks_ties_randomly() {
        let f = Framework::default();
        let mut cache = Cache::new();
        cache.upsert_node(node("small", "2", json!({})));
        cache.upsert_node(node("big", "8", json!({})));
        let p = pod_requesting("p", "1", "1Gi");
        assert_eq!(f.schedule(&p, &cache, &mut rng()).unwrap(), "big");

        let mut cache = Cache::new();
        for i in 0..4 {
            cache.upsert_node(node(&format!("n{i}"), "2", json!({})));
        }
        let mut seen = HashSet::new();
        let mut r = rng();
        for _ in 0..64 {
            seen.insert(f.schedule(&p, &cache, &mut r).unwrap());
        }
        assert_eq!(seen.len(), 4, "equal nodes are all chosen sometimes");
    }

    #[test]
    fn preferred_affinity_reaches_namespaces_by_label() {
        let f = Framework::default();
        let mut cache = Cache::new();
        for name in ["a", "b", "c"] {
            cache.upsert_node(node(name, "4", json!({})));
        }
        cache.upsert_namespace("prod", [("env".to_string(), "prod".to_string())].into());
        let db: Pod = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "prod", "labels": {"app": "db"}},
            "spec": {"nodeName": "b", "containers": [{"name": "c", "image": "db"}]}
        }))
        .unwrap();
        cache.upsert_bound_pod(Arc::new(db));
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "web"}], "affinity": {"podAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {"app": "db"}},
                    "namespaceSelector": {"matchLabels": {"env": "prod"}},
                    "topologyKey": "kubernetes.io/hostname"}}]}}}
        }))
        .unwrap();
        let p = PodInfo::new(Arc::new(p));
        let mut r = rng();
        for _ in 0..16 {
            assert_eq!(f.schedule(&p, &cache, &mut r).unwrap(), "b", "the preferred term matches prod's db pod");
        }
    }

    #[test]
    fn node_selector_and_tolerations_steer_pods() {
        let f = Framework::default();
        let cache = cluster();
        let mut selected: Pod = serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "d"},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": "n3"}, "containers": [{"name": "c"}]}}))
        .unwrap();
        let info = PodInfo::new(Arc::new(selected.clone()));
        assert_eq!(f.schedule(&info, &cache, &mut rng()).unwrap(), "n3");
        selected.spec.as_mut().unwrap().node_selector =
            Some([("kubernetes.io/hostname".to_string(), "n1".to_string())].into());
        let info = PodInfo::new(Arc::new(selected.clone()));
        assert!(f.schedule(&info, &cache, &mut rng()).is_err());
        selected.spec.as_mut().unwrap().tolerations =
            Some(vec![serde_json::from_value(json!({"key": "key", "operator": "Exists"})).unwrap()]);
        let info = PodInfo::new(Arc::new(selected));
        assert_eq!(f.schedule(&info, &cache, &mut rng()).unwrap(), "n1");
    }

    #[test]
    fn feasible_node_count_follows_upstream() {
        assert_eq!(feasible_nodes_to_find(50), 50);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 500);
        assert_eq!(feasible_nodes_to_find(300), 144);
    }

    /// A rough throughput figure for the decision alone (no API): 1000 nodes, all on one
    /// thread and with parallel filtering/scoring forced on.
    #[test]
    fn throughput_over_a_thousand_nodes() {
        for (label, f) in [
            ("sequential", Framework::default().with_parallel_min_nodes(usize::MAX)),
            ("parallel (forced)", Framework::default().with_parallel_min_nodes(100)),
        ] {
            let mut cache = Cache::new();
            for i in 0..1000 {
                cache.upsert_node(node(&format!("node-{i:04}"), "32", json!({})));
            }
            let started = std::time::Instant::now();
            let mut r = rng();
            let n = 500;
            for i in 0..n {
                let p = Arc::new(pod_requesting(&format!("p{i}"), "100m", "128Mi"));
                let node = f.schedule(&p, &cache, &mut r).unwrap();
                cache.assume(p, &node);
            }
            let took = started.elapsed();
            eprintln!(
                "{label}: scheduled {n} pods over 1000 nodes in {took:?} ({:.0} pods/s)",
                n as f64 / took.as_secs_f64()
            );
        }
    }

    fn prioritised(name: &str, cpu: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
            }))
            .unwrap(),
        )))
    }

    #[test]
    fn preemption_evicts_the_fewest_least_important_pods() {
        let f = Framework::default();
        let mut cache = Cache::new();
        cache.upsert_node(node("n1", "2", json!({})));
        cache.upsert_node(node("n2", "2", json!({})));
        cache.assume(prioritised("low-a", "1", 1), "n1");
        cache.assume(prioritised("low-b", "1", 2), "n1");
        cache.assume(prioritised("mid", "2", 5), "n2");
        let high = prioritised("high", "1", 10);
        let Err(ScheduleError::Unfit(fit)) = f.schedule(&high, &cache, &mut rng()) else { panic!("nothing fits") };
        let p = f.find_preemption(&high, &cache, &fit, &[]).expect("preemption finds room");
        assert_eq!(p.node, "n1");
        assert_eq!(p.victims.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(), ["default/low-a"]);

        // Equal priority cannot preempt; nor can a pod with preemptionPolicy Never.
        let peer = prioritised("peer", "1", 1);
        let Err(ScheduleError::Unfit(fit)) = f.schedule(&peer, &cache, &mut rng()) else { panic!() };
        assert!(f.find_preemption(&peer, &cache, &fit, &[]).is_none());
        assert!(
            fit.message()
                .ends_with("preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod..")
        );
        let mut never = fit.clone();
        never.preemption_ineligible = Some(NOT_ELIGIBLE_NEVER);
        assert!(f.find_preemption(&high, &cache, &never, &[]).is_none());
    }

    fn started(name: &str, priority: i32, at: &str) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name},
                "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]},
                "status": {"startTime": at},
            }))
            .unwrap(),
        )))
    }

    #[test]
    fn preemption_ties_go_to_the_node_whose_victims_started_last_whatever_the_search_order() {
        let f = Framework::default();
        let mut cache = Cache::new();
        for (i, at) in ["2026-01-01T00:00:05Z", "2026-01-01T00:00:09Z", "2026-01-01T00:00:01Z"].iter().enumerate() {
            let name = format!("n{i}");
            cache.upsert_node(node(&name, "2", json!({})));
            cache.assume(started(&format!("p{i}"), 1, at), &name);
        }
        let high = prioritised("high", "1", 10);
        let Err(ScheduleError::Unfit(fit)) = f.schedule(&high, &cache, &mut rng()) else { panic!("nothing fits") };
        // The search starts at a random node; the choice must not depend on it.
        for _ in 0..20 {
            let p = f.find_preemption(&high, &cache, &fit, &[]).expect("preemption finds room");
            assert_eq!(p.node, "n1");
        }
    }

    fn labelled(name: &str, app: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": app}},
                "spec": {"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
            }))
            .unwrap(),
        )))
    }

    fn budget(app: &str, allowed: i32, disrupted: &[&str]) -> PodDisruptionBudget {
        let disrupted: serde_json::Map<String, Value> =
            disrupted.iter().map(|n| (n.to_string(), json!("2026-01-01T00:00:00Z"))).collect();
        serde_json::from_value(json!({
            "metadata": {"name": format!("pdb-{app}"), "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": app}}},
            "status": {"disruptionsAllowed": allowed, "disruptedPods": disrupted,
                       "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1, "observedGeneration": 1},
        }))
        .unwrap()
    }

    #[test]
    fn preemption_prefers_nodes_where_budgets_allow_the_evictions() {
        let f = Framework::default();
        let mut cache = Cache::new();
        cache.upsert_node(node("n1", "1", json!({})));
        cache.upsert_node(node("n2", "1", json!({})));
        cache.assume(labelled("guarded", "db", 1), "n1");
        cache.assume(labelled("free", "web", 2), "n2");
        let high = prioritised("high", "1", 10);
        let Err(ScheduleError::Unfit(fit)) = f.schedule(&high, &cache, &mut rng()) else { panic!("nothing fits") };
        // Without budgets the lowest victim wins.
        assert_eq!(f.find_preemption(&high, &cache, &fit, &[]).unwrap().node, "n1");
        // A budget that allows no disruption of `db` moves the preemption to n2.
        let p = f.find_preemption(&high, &cache, &fit, &[budget("db", 0, &[])]).unwrap();
        assert_eq!((p.node.as_str(), p.pdb_violations), ("n2", 0));
        // One allowed disruption, or the pod already being disrupted, lets it go.
        assert_eq!(f.find_preemption(&high, &cache, &fit, &[budget("db", 1, &[])]).unwrap().node, "n1");
        assert_eq!(f.find_preemption(&high, &cache, &fit, &[budget("db", 0, &["guarded"])]).unwrap().node, "n1");
        // When every choice violates a budget, preemption still happens, counting the violation.
        let both = [budget("db", 0, &[]), budget("web", 0, &[])];
        let p = f.find_preemption(&high, &cache, &fit, &both).unwrap();
        assert_eq!((p.node.as_str(), p.pdb_violations), ("n1", 1));
    }

    #[test]
    fn preemption_sees_victims_gone_from_affinity_counts() {
        let f = Framework::default();
        let mut cache = Cache::new();
        cache.upsert_node(node("n1", "4", json!({})));
        cache.assume(labelled("noisy", "noisy", 1), "n1");
        let high = Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "high", "namespace": "default", "uid": "high"},
                "spec": {"priority": 10, "containers": [{"name": "c"}], "affinity": {"podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"app": "noisy"}}, "topologyKey": "kubernetes.io/hostname"}]}}},
            }))
            .unwrap(),
        )));
        let Err(ScheduleError::Unfit(fit)) = f.schedule(&high, &cache, &mut rng()) else { panic!("anti-affinity") };
        let p = f.find_preemption(&high, &cache, &fit, &[]).expect("evicting the noisy pod makes room");
        assert_eq!((p.node.as_str(), p.victims.len()), ("n1", 1));
    }

    #[test]
    fn budgets_lend_their_allowance_pod_by_pod() {
        let pods = vec![labelled("a", "db", 5), labelled("b", "db", 4), labelled("c", "db", 3)];
        let (violating, other) = split_by_pdb(pods, &[budget("db", 2, &[])]);
        let names = |v: &[Arc<PodInfo>]| v.iter().map(|p| p.key.clone()).collect::<Vec<_>>();
        assert_eq!(names(&other), ["default/a", "default/b"]);
        assert_eq!(names(&violating), ["default/c"]);
    }

    #[test]
    fn nominated_pods_keep_their_room() {
        let f = Framework::default();
        let mut cache = Cache::new();
        cache.upsert_node(node("n1", "2", json!({})));
        let high = prioritised("high", "1500m", 10);
        cache.nominate(high.clone(), "n1");
        let low = prioritised("low", "1", 1);
        assert!(f.schedule(&low, &cache, &mut rng()).is_err(), "the room is reserved for the nominated pod");
        assert_eq!(f.schedule(&high, &cache, &mut rng()).unwrap(), "n1", "its own nomination does not block it");
        let higher = prioritised("higher", "1", 20);
        assert_eq!(f.schedule(&higher, &cache, &mut rng()).unwrap(), "n1", "higher priority ignores it");
        cache.clear_nomination("default/high");
        assert!(f.schedule(&low, &cache, &mut rng()).is_ok());
    }

    #[test]
    fn parallel_and_sequential_evaluation_agree() {
        let f = Framework::default();
        let mut cache = Cache::new();
        // 450 nodes of mixed size, some tainted, some already full.
        for i in 0..450 {
            let cpu = ["1", "2", "4", "8"][i % 4];
            let extra = if i % 7 == 0 {
                json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}})
            } else {
                json!({})
            };
            cache.upsert_node(node(&format!("n{i:03}"), cpu, extra));
        }
        for i in (0..450).step_by(5) {
            cache.assume(Arc::new(pod_requesting(&format!("filler{i}"), "1", "0")), &format!("n{i:03}"));
        }
        let nodes: Vec<&NodeInfo> = cache.nodes().collect();
        for (cpu, wanted, start) in [("1500m", 100, 0), ("1500m", 1000, 17), ("3", 144, 440), ("100", 100, 3)] {
            let p = pod_requesting("p", cpu, "0");
            let mut state = CycleState::new();
            let filters = f.pre_filter(&p, &nodes, &mut state);
            let seq = f.find_feasible(&p, &cache, &nodes, &state, &filters, start, wanted, false);
            let par = f.find_feasible(&p, &cache, &nodes, &state, &filters, start, wanted, true);
            let names = |v: &[&NodeInfo]| v.iter().map(|n| n.name().to_string()).collect::<Vec<_>>();
            assert_eq!(names(&seq.0), names(&par.0), "feasible for {cpu}");
            assert_eq!(seq.1, par.1, "statuses for {cpu}");
            assert_eq!(seq.2, par.2, "examined for {cpu}");
            if seq.0.len() > 1 {
                assert_eq!(
                    f.score_nodes(&p, &nodes, &seq.0, false),
                    f.score_nodes(&p, &nodes, &seq.0, true),
                    "scores for {cpu}"
                );
            }
        }
    }

    /// A mixed cluster: zones, taints (hard, soft), a cordoned node, images, and existing pods
    /// without and (when `affinity`) with pod (anti-)affinity terms.
    fn mixed_cluster(affinity: bool) -> Cache {
        let mut cache = Cache::new();
        for i in 0..12 {
            let name = format!("m{i:02}");
            let cpu = ["1", "2", "4"][i % 3];
            let mut v = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "spec": {}, "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"}}});
            if i != 11 {
                v["metadata"]["labels"]["zone"] = json!(format!("z{}", i % 3));
            }
            match i % 4 {
                1 => v["spec"]["taints"] = json!([{"key": "k", "value": "v", "effect": "NoSchedule"}]),
                2 => v["spec"]["taints"] = json!([{"key": "soft", "effect": "PreferNoSchedule"}]),
                _ => {}
            }
            if i == 7 {
                v["spec"]["unschedulable"] = json!(true);
            }
            if i % 3 == 0 {
                v["status"]["images"] =
                    json!([{"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 300 * 1024 * 1024}]);
            }
            cache.upsert_node(serde_json::from_value(v).unwrap());
        }
        let existing = |name: &str, app: &str, affinity: Value, owned: bool| -> Arc<PodInfo> {
            let mut v = json!({"metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}], "affinity": affinity}});
            if owned {
                v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs", "controller": true}]);
            }
            Arc::new(PodInfo::new(Arc::new(serde_json::from_value(v).unwrap())))
        };
        for i in 0..12 {
            let app = ["web", "db", "cache"][i % 3];
            cache.assume(existing(&format!("e{i}"), app, json!(null), i % 2 == 0), &format!("m{i:02}"));
        }
        if affinity {
            let term = |app: &str| json!([{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"}]);
            let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("web")}});
            cache.assume(existing("repel", "db", anti, false), "m04");
            let soft = json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 7, "podAffinityTerm": term("web")[0].clone()}]}});
            cache.assume(existing("attract", "cache", soft, false), "m05");
        }
        cache
    }

    /// Pods touching every plugin's fast and slow paths.
    fn varied_pods() -> Vec<PodInfo> {
        let term = |app: &str| json!([{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"}]);
        let specs = [
            json!({}),
            json!({"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}, {"name": "d", "image": "nginx"}]}),
            json!({"tolerations": [{"operator": "Exists"}]}),
            json!({"tolerations": [{"key": "soft", "operator": "Exists", "effect": "PreferNoSchedule"}]}),
            json!({"nodeSelector": {"zone": "z1"}}),
            json!({"nodeSelector": {}}),
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z0", "z2"]}]}]}}}}),
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}}]}}}),
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
            json!({"nodeName": "m03"}),
            json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}}}]}),
            json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app": "web"}}}]}),
            json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("db")}}}),
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("cache")}}}),
            json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 3, "podAffinityTerm": term("db")[0].clone()}]}}}),
        ];
        let mut pods: Vec<PodInfo> = specs
            .into_iter()
            .map(|spec| {
                let mut v = json!({"metadata": {"name": "p", "namespace": "default", "uid": "p", "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]}});
                for (k, x) in spec.as_object().unwrap() {
                    v["spec"][k] = x.clone();
                }
                PodInfo::new(Arc::new(serde_json::from_value(v).unwrap()))
            })
            .collect();
        pods.push(PodInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "r", "namespace": "default", "uid": "r", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs", "controller": true}]},
                "spec": {"containers": [{"name": "c"}]}}))
            .unwrap(),
        )));
        pods
    }

    /// Skipped filters and scores every node shares change nothing: the framework's answers
    /// equal running every filter and scoring every node with every plugin.
    #[test]
    fn skips_and_shared_scores_match_full_evaluation() {
        let f = Framework::default();
        for affinity in [false, true] {
            let cache = mixed_cluster(affinity);
            let nodes: Vec<&NodeInfo> = cache.nodes().collect();
            for (i, pod) in varied_pods().iter().enumerate() {
                let mut with_counts = CycleState::new();
                with_counts.insert(AFFINITY_COUNTS, Box::new(cache.affinity_counts()));
                let active = f.pre_filter(pod, &nodes, &mut with_counts);
                let mut plain = CycleState::new();
                let _ = f.pre_filter(pod, &nodes, &mut plain);
                let mut feasible = Vec::new();
                for node in &nodes {
                    let full = f.run_filters(&plain, pod, node);
                    assert_eq!(f.run_filters(&with_counts, pod, node), full, "pod {i} on {}", node.name());
                    let skipped = active.iter().try_for_each(|p| p.filter(&with_counts, pod, node));
                    assert_eq!(skipped, full, "pod {i} on {}", node.name());
                    if full.is_ok() {
                        feasible.push(*node);
                    }
                }
                if feasible.len() < 2 {
                    feasible = nodes.clone();
                }
                let mut state = CycleState::new();
                for (plugin, _) in &f.scorers {
                    let _ = plugin.pre_score(pod, &feasible, &nodes, &mut state);
                }
                let mut want = vec![0i64; feasible.len()];
                for (plugin, weight) in &f.scorers {
                    let mut raw: Vec<i64> = feasible.iter().map(|n| plugin.score(&state, pod, n)).collect();
                    plugin.normalize(&mut raw);
                    want.iter_mut().zip(&raw).for_each(|(t, s)| *t += s * weight);
                }
                assert_eq!(f.score_nodes(pod, &nodes, &feasible, false), want, "pod {i}");
                let mut facts = CycleState::new();
                facts.insert(AFFINITY_COUNTS, Box::new(cache.affinity_counts()));
                facts.insert(IMAGE_NODES, Box::new(cache.image_nodes()));
                assert_eq!(f.score_with(facts, pod, &nodes, &feasible, false), want, "pod {i} (cache facts)");
            }
        }
    }

    #[test]
    fn cycle_state_replaces_and_reads_by_type() {
        let mut state = CycleState::new();
        state.insert("a", Box::new(1u32));
        state.insert("b", Box::new("x"));
        state.insert("a", Box::new(2u32));
        assert_eq!(state.read::<u32>("a"), Some(&2));
        assert_eq!(state.read::<u64>("a"), None);
        assert_eq!(state.read::<&str>("b"), Some(&"x"));
        assert!(state.contains_key("b") && !state.contains_key("c"));
    }
}
