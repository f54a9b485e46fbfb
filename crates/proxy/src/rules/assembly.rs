//! The node's table kept up to date Service by Service.
//!
//! [`desired`](super::desired) computes the whole table from scratch. [`Assembly`] computes the
//! same table but keeps it between syncs: each Service's part is remembered with the
//! `resourceVersion`s it came from, only Services whose object or slices changed (or that
//! appeared or went away) are recomputed, and their old part is taken out of the table and the
//! new one put in. The difference for the kernel is collected while doing so, from the touched
//! chains and set elements only, so a one-endpoint change costs the same with 10 or 10,000
//! Services (plus one pass comparing `resourceVersion`s).
//!
//! Set elements may be shared by Services (the hairpin pair of a Pod behind two Services, an
//! external IP claimed twice): each element remembers which Services put it there and with
//! what value, and holds the value of the last of them in (namespace, name) order, as
//! [`desired`](super::desired) merges them.

use super::{EndpointSlice, NodeView, Ruleset, Service, Set, Update, base, fragment, index_slices, proxied};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A Service: (namespace, name), ordered as [`desired`](super::desired) merges Services.
type ServiceId = Arc<(String, String)>;

/// What a Service's part was computed from.
#[derive(Debug, PartialEq, Eq)]
struct Version {
    service: String,
    /// (slice name, resourceVersion), sorted.
    slices: Vec<(String, String)>,
}

impl Version {
    /// `None` when an object lacks a name or resourceVersion (then it is always recomputed).
    fn of(svc: &Service, slices: &[&EndpointSlice]) -> Option<Version> {
        let service = svc.metadata.resource_version.clone()?;
        let mut parts = Vec::with_capacity(slices.len());
        for s in slices {
            parts.push((s.metadata.name.clone()?, s.metadata.resource_version.clone()?));
        }
        parts.sort_unstable();
        Some(Version { service, slices: parts })
    }

    fn matches(&self, svc: &Service, slices: &[&EndpointSlice]) -> bool {
        if svc.metadata.resource_version.as_deref() != Some(self.service.as_str()) || slices.len() != self.slices.len()
        {
            return false;
        }
        slices.iter().all(|s| {
            let (Some(name), Some(rv)) = (s.metadata.name.as_deref(), s.metadata.resource_version.as_deref()) else {
                return false;
            };
            self.slices.binary_search_by(|(n, _)| n.as_str().cmp(name)).is_ok_and(|i| self.slices[i].1 == rv)
        })
    }
}

#[derive(Debug)]
struct Part {
    id: ServiceId,
    version: Option<Version>,
    rules: Ruleset,
    /// The last [`Assembly::update`] round that saw the Service.
    seen: u64,
}

/// The node's table, kept up to date between syncs (see the module documentation).
#[derive(Debug, Default)]
pub struct Assembly {
    view: Option<NodeView>,
    /// Parts by namespace, then name.
    parts: HashMap<String, HashMap<String, Part>>,
    table: Ruleset,
    /// Sets of the fixed part, whose elements come from many Services.
    shared: BTreeSet<String>,
    /// Set → element → the Services that put it there, with their values, in Service order.
    owners: HashMap<String, HashMap<String, Vec<(ServiceId, String)>>>,
    round: u64,
}

/// What one [`Assembly::update`] did.
#[derive(Debug, Default)]
pub struct Changes {
    /// The table was built anew (first update, or the node view changed): there is no
    /// difference to send, only the whole table.
    pub rebuilt: bool,
    /// Services whose part was computed (new, changed) or removed.
    pub recomputed: usize,
    /// What the touched chains, sets and elements were before, and are now (only when
    /// differences were asked for).
    before: Ruleset,
    after: Ruleset,
}

impl Changes {
    /// The transaction turning the previous table into the new one ([`Update::Replace`] when
    /// the table was rebuilt).
    pub fn render(&self, table: &str) -> Update {
        if self.rebuilt {
            return Update::Replace;
        }
        self.after.render_update(&self.before, table)
    }
}

/// The touched names of one update, and their previous content.
#[derive(Default)]
struct Touched {
    chains: BTreeSet<String>,
    sets: BTreeSet<String>,
    elements: HashMap<String, BTreeSet<String>>,
    before: Ruleset,
}

impl Assembly {
    /// The table as of the last update.
    pub fn table(&self) -> &Ruleset {
        &self.table
    }

    /// Brings the table up to date with `services` and `slices` (all of them, as
    /// [`desired`](super::desired) takes them). With `differences`, the returned [`Changes`]
    /// can render the transaction from the previous table.
    pub fn update<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        node: &NodeView,
        differences: bool,
    ) -> Changes {
        let rebuilt = self.view.as_ref() != Some(node);
        if rebuilt {
            self.parts.clear();
            self.owners.clear();
            self.table = base(node);
            self.shared = self.table.sets.keys().cloned().collect();
            self.view = Some(node.clone());
        }
        let mut touched = (differences && !rebuilt).then(Touched::default);
        self.round += 1;
        let round = self.round;
        let index = index_slices(slices);
        let mut recomputed = 0;
        for svc in services {
            if !proxied(svc) {
                continue;
            }
            let (Some(ns), Some(name)) = (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref()) else {
                continue;
            };
            let own = index.get(&(ns, name)).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(part) = self.parts.get_mut(ns).and_then(|m| m.get_mut(name)) {
                if part.seen == round {
                    continue; // listed twice: the first one counts
                }
                if part.version.as_ref().is_some_and(|v| v.matches(svc, own)) {
                    part.seen = round;
                    continue;
                }
            }
            recomputed += 1;
            let id = Arc::new((ns.to_string(), name.to_string()));
            let new = Part { id, version: Version::of(svc, own), rules: fragment(svc, own, node), seen: round };
            self.replace(ns, name, Some(new), touched.as_mut());
        }
        let gone: Vec<ServiceId> =
            self.parts.values().flat_map(|m| m.values()).filter(|p| p.seen != round).map(|p| p.id.clone()).collect();
        for id in gone {
            recomputed += 1;
            self.replace(&id.0, &id.1, None, touched.as_mut());
        }
        let mut changes = Changes { rebuilt, recomputed, ..Changes::default() };
        if let Some(t) = touched {
            changes.after = self.snapshot(&t);
            changes.before = t.before;
        }
        changes
    }

    /// Puts `new` in place of the Service's current part (either may be absent).
    fn replace(&mut self, ns: &str, name: &str, new: Option<Part>, touched: Option<&mut Touched>) {
        let old = self.parts.get_mut(ns).and_then(|m| m.remove(name));
        if self.parts.get(ns).is_some_and(HashMap::is_empty) {
            self.parts.remove(ns);
        }
        if let Some(t) = touched {
            for part in old.iter().chain(new.iter()) {
                self.touch(&part.rules, t);
            }
        }
        if let Some(old) = &old {
            let rules = &old.rules;
            for chain in rules.chains.keys() {
                self.table.chains.remove(chain);
            }
            for (set_name, set) in &rules.sets {
                if !self.shared.contains(set_name) {
                    self.table.sets.remove(set_name);
                    continue;
                }
                let (Some(owners), Some(target)) = (self.owners.get_mut(set_name), self.table.sets.get_mut(set_name))
                else {
                    continue;
                };
                for key in set.elements.keys() {
                    let Some(by) = owners.get_mut(key) else { continue };
                    if let Ok(i) = by.binary_search_by(|(id, _)| id.cmp(&old.id)) {
                        by.remove(i);
                    }
                    match by.last() {
                        Some((_, value)) => {
                            target.elements.insert(key.clone(), value.clone());
                        }
                        None => {
                            owners.remove(key);
                            target.elements.remove(key);
                        }
                    }
                }
            }
            self.table.service_ports -= rules.service_ports;
            self.table.endpoints -= rules.endpoints;
        }
        if let Some(new) = new {
            let rules = &new.rules;
            self.table.chains.extend(rules.chains.iter().map(|(k, c)| (k.clone(), c.clone())));
            for (set_name, set) in &rules.sets {
                let target = match self.table.sets.get_mut(set_name) {
                    Some(target) if self.shared.contains(set_name) => target,
                    _ => {
                        self.table.sets.insert(set_name.clone(), set.clone());
                        continue;
                    }
                };
                let owners = self.owners.entry(set_name.clone()).or_default();
                for (key, value) in &set.elements {
                    let by = owners.entry(key.clone()).or_default();
                    match by.binary_search_by(|(id, _)| id.cmp(&new.id)) {
                        Ok(i) => by[i].1 = value.clone(),
                        Err(i) => by.insert(i, (new.id.clone(), value.clone())),
                    }
                    if let Some((_, value)) = by.last() {
                        target.elements.insert(key.clone(), value.clone());
                    }
                }
            }
            self.table.service_ports += rules.service_ports;
            self.table.endpoints += rules.endpoints;
            self.parts.entry(ns.to_string()).or_default().insert(name.to_string(), new);
        }
    }

    /// Records what a part's chains, sets and elements are now, before they change.
    fn touch(&self, rules: &Ruleset, t: &mut Touched) {
        for name in rules.chains.keys() {
            if t.chains.insert(name.clone())
                && let Some(chain) = self.table.chains.get(name)
            {
                t.before.chains.insert(name.clone(), chain.clone());
            }
        }
        for (name, set) in &rules.sets {
            let Some(current) = self.table.sets.get(name) else {
                t.sets.insert(name.clone());
                continue;
            };
            if t.sets.insert(name.clone()) {
                t.before.sets.insert(name.clone(), current.clone_empty());
            }
            let keys = t.elements.entry(name.clone()).or_default();
            for key in set.elements.keys() {
                if keys.insert(key.clone())
                    && let Some(value) = current.elements.get(key)
                    && let Some(before) = t.before.sets.get_mut(name)
                {
                    before.elements.insert(key.clone(), value.clone());
                }
            }
        }
    }

    /// The touched chains, sets and elements as they are now.
    fn snapshot(&self, t: &Touched) -> Ruleset {
        let mut after = Ruleset::default();
        for name in &t.chains {
            if let Some(chain) = self.table.chains.get(name) {
                after.chains.insert(name.clone(), chain.clone());
            }
        }
        for name in &t.sets {
            let Some(current) = self.table.sets.get(name) else { continue };
            let mut set = current.clone_empty();
            for key in t.elements.get(name).into_iter().flatten() {
                if let Some(value) = current.elements.get(key) {
                    set.elements.insert(key.clone(), value.clone());
                }
            }
            after.sets.insert(name.clone(), set);
        }
        after
    }
}

impl Set {
    fn clone_empty(&self) -> Set {
        Set { kind: self.kind, spec: self.spec.clone(), elements: BTreeMap::new() }
    }
}
