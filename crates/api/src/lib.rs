//! The Kubernetes API as data: which resources exist, how their objects are defaulted,
//! validated, selected and converted between versions.
//!
//! Nothing here does I/O. The API server (`rudder-apiserver`) drives these pieces:
//! - [`catalog`]: every built-in group/version/resource with kind, scope, verbs, short names,
//!   categories and subresources, and the typed operations bound to each kind.
//! - [`kinds`]: per-kind defaulting and validation over `k8s-openapi` types ([`ApiKind`]).
//! - [`validation`]: field paths and field errors, names, labels and object metadata.
//! - [`selectors`]: label and field selectors.
//! - [`schema`]: wire and patch metadata of every built-in message (generated table).
//! - [`protobuf`]: Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`) to and from JSON.
//! - [`strategic`]: strategic merge patch, applied with the patch markers of [`schema`].
//! - [`convert`]: conversion between versions that share one storage (e.g. autoscaling v1/v2).

pub mod catalog;
pub mod convert;
pub mod kinds;
pub mod protobuf;
pub mod schema;
pub mod selectors;
pub mod strategic;
pub mod validation;

pub use kinds::ApiKind;
pub use validation::{FieldError, FieldErrors, FieldPath};
