//! Field paths, field errors and the validators shared by every kind.
//!
//! Key types: [`FieldPath`] (builds `spec.containers[0].name`), [`FieldError`] and
//! [`FieldErrors`] (collects every problem, never stops at the first).

mod field;
pub mod meta;
pub mod names;

pub use field::{ErrorType, FieldError, FieldErrors, FieldPath};
pub use meta::{validate_annotations, validate_labels, validate_object_meta, validate_object_meta_update};
pub use names::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
    is_valid_path_segment_name, validate_generate_name, validate_name,
};
