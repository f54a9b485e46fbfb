//! The node agent (kubelet): registers its node, keeps the node's Lease and status fresh, and runs
//! the pods bound to it in real containers through the CRI v1 API of containerd.

pub mod cri;
pub mod image;
pub mod layout;
pub mod containerd;
pub mod network;
pub mod node;
pub mod server;
pub mod env;
pub mod volumes;
pub mod probes;
pub mod dns;
pub mod agent;
pub mod events;
pub mod pod;
pub mod pull;
#[cfg(test)]
pub mod fake;
pub mod bootstrap;
pub mod admission;
