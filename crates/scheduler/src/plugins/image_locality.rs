//! ImageLocality: prefers nodes that already hold the pod's container images, weighing each
//! image by its size and by how many nodes have it (an image on every node says little).

use crate::cache::NodeInfo;
use crate::framework::{CycleState, IMAGE_NODES, ImageNodes, MAX_NODE_SCORE, PodInfo, ScorePlugin};
use std::sync::Arc;

pub const NAME: &str = "ImageLocality";
/// Sums below this count as nothing (upstream: 23 MiB).
const MIN_THRESHOLD: i64 = 23 * 1024 * 1024;
/// Per container, sums above this count as the maximum (upstream: 1000 MiB).
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * 1024 * 1024;

pub struct ImageLocality;

/// `nginx` → `nginx:latest`; names with a tag or digest stay as they are.
pub fn normalized_image_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') { name.to_string() } else { format!("{name}:latest") }
}

/// The pod's images with how many nodes hold each, computed once per cycle.
struct Spread {
    /// Normalised image of each container (init containers first) → nodes holding it.
    images: Vec<(String, usize)>,
    total_nodes: usize,
}

fn pod_images(pod: &PodInfo) -> Vec<String> {
    let Some(spec) = pod.pod.spec.as_ref() else { return Vec::new() };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter_map(|c| c.image.as_deref())
        .filter(|i| !i.is_empty())
        .map(normalized_image_name)
        .collect()
}

impl ScorePlugin for ImageLocality {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(
        &self,
        pod: &PodInfo,
        _nodes: &[&NodeInfo],
        all_nodes: &[&NodeInfo],
        state: &mut CycleState,
    ) -> Option<i64> {
        let wanted = pod_images(pod);
        if wanted.is_empty() || all_nodes.is_empty() {
            return Some(0);
        }
        let mut images: Vec<(String, usize)> = wanted.into_iter().map(|i| (i, 0)).collect();
        match state.read::<Arc<ImageNodes>>(IMAGE_NODES) {
            Some(counts) => {
                for (image, count) in images.iter_mut() {
                    *count = counts.get(image).copied().unwrap_or(0);
                }
            }
            None => {
                for node in all_nodes.iter().filter(|n| !n.images.is_empty()) {
                    for (image, count) in images.iter_mut() {
                        if node.images.contains_key(image) {
                            *count += 1;
                        }
                    }
                }
            }
        }
        // An image no node holds adds nothing anywhere.
        if images.iter().all(|(_, count)| *count == 0) {
            return Some(0);
        }
        state.insert(NAME, Box::new(Spread { images, total_nodes: all_nodes.len() }));
        None
    }

    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(spread) = state.read::<Spread>(NAME) else { return 0 };
        if spread.images.is_empty() || spread.total_nodes == 0 || node.images.is_empty() {
            return 0;
        }
        let sum: i64 = spread
            .images
            .iter()
            .filter_map(|(image, count)| {
                let size = *node.images.get(image)?;
                let share = *count as f64 / spread.total_nodes as f64;
                Some((size as f64 * share) as i64)
            })
            .sum();
        let max = MAX_CONTAINER_THRESHOLD * spread.images.len() as i64;
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testutil::{node, pod};
    use serde_json::json;

    #[test]
    fn names_are_normalized() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.25"), "nginx:1.25");
        assert_eq!(normalized_image_name("registry:5000/app"), "registry:5000/app:latest");
        assert_eq!(normalized_image_name("app@sha256:abc"), "app@sha256:abc");
    }

    #[test]
    fn table() {
        let mib = 1024 * 1024;
        let with = |size: i64| {
            node(
                "n",
                json!({"status": {"images": [{"names": ["docker.io/library/big:1", "big:1"], "sizeBytes": size}]}}),
            )
        };
        let p = pod(json!({"containers": [{"name": "c", "image": "big:1"}]}));
        let cases = [
            // (size on the scored node, nodes with it of 2, expected score)
            ("no image", None, 0),
            ("small image", Some(10 * mib), 0),
            ("large image on both nodes", Some(500 * mib), (500 - 23) * 100 / (1000 - 23)),
            ("huge image", Some(5000 * mib), 100),
        ];
        for (name, size, want) in cases {
            let scored = size.map(with).unwrap_or_else(|| node("n", json!({})));
            let other = size.map(with).unwrap_or_else(|| node("m", json!({})));
            let all = [&scored, &other];
            let mut state = CycleState::new();
            ImageLocality.pre_score(&p, &all, &all, &mut state);
            assert_eq!(ImageLocality.score(&state, &p, &scored), want, "{name}");
        }
        // Held by one node of two: half the size counts.
        let scored = with(1000 * mib);
        let other = node("m", json!({}));
        let mut state = CycleState::new();
        ImageLocality.pre_score(&p, &[&scored, &other], &[&scored, &other], &mut state);
        assert_eq!(ImageLocality.score(&state, &p, &scored), (500 - 23) * 100 / (1000 - 23));
    }
}
