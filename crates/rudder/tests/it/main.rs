//! Black-box tests: the real `rudder` binary on port 0 with a temporary data dir, driven by
//! kube-rs, raw HTTP and the real kubectl. One test binary for the whole suite.

mod api;
mod clients;
mod common;
mod containers;
mod controllers;
mod discovery;
mod endpoints;
mod flow;
mod fuzz;
mod gc;
mod kubectl;
mod leader;
mod lifecycle;
mod multinode;
mod node;
mod nodelifecycle;
mod nodesim;
mod python;
mod scheduler;
mod services;
mod tables;
mod tokens;
