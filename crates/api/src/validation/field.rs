//! Field paths and field errors, shaped as upstream's `field.Path` and `field.Error`.

use serde_json::Value;
use std::fmt;

/// A path to a field inside an object, such as `spec.containers[0].image`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    /// Starts a path at a top-level field, e.g. `FieldPath::root("spec")`.
    pub fn root(name: &str) -> Self {
        FieldPath(name.to_string())
    }

    /// Appends a named child: `spec` → `spec.replicas`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() { FieldPath(name.to_string()) } else { FieldPath(format!("{}.{}", self.0, name)) }
    }

    /// Appends a list index: `spec.containers` → `spec.containers[0]`.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{}]", self.0, i))
    }

    /// Appends a map key: `metadata.labels` → `metadata.labels[app]`.
    pub fn key(&self, k: &str) -> Self {
        FieldPath(format!("{}[{}]", self.0, k))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of field error upstream knows; each maps to a `Status` cause reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// `FieldValueNotFound`: "Not found".
    NotFound,
    /// `FieldValueRequired`: "Required value".
    Required,
    /// `FieldValueDuplicate`: "Duplicate value".
    Duplicate,
    /// `FieldValueInvalid`: "Invalid value".
    Invalid,
    /// `FieldValueNotSupported`: "Unsupported value".
    NotSupported,
    /// `FieldValueForbidden`: "Forbidden".
    Forbidden,
    /// `FieldValueTooLong`: "Too long".
    TooLong,
    /// `FieldValueTooMany`: "Too many".
    TooMany,
    /// `InternalError`: "Internal error".
    Internal,
}

impl ErrorType {
    /// The `reason` of a `StatusCause` for this error type.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::Internal => "InternalError",
        }
    }

    /// The short text upstream prints for this error type.
    pub fn text(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::Internal => "Internal error",
        }
    }
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// What kind of problem.
    pub error_type: ErrorType,
    /// Where, e.g. `spec.containers[0].name`.
    pub field: String,
    /// The offending value, when it helps (printed as upstream does: strings quoted).
    pub bad_value: Option<Value>,
    /// A human explanation, possibly empty.
    pub detail: String,
}

impl FieldError {
    fn new(error_type: ErrorType, path: &FieldPath, bad_value: Option<Value>, detail: &str) -> Self {
        FieldError { error_type, field: path.to_string(), bad_value, detail: detail.to_string() }
    }

    /// `Required value`, with an optional detail.
    pub fn required(path: &FieldPath, detail: &str) -> Self {
        Self::new(ErrorType::Required, path, None, detail)
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(path: &FieldPath, value: impl Into<Value>, detail: &str) -> Self {
        Self::new(ErrorType::Invalid, path, Some(value.into()), detail)
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(path: &FieldPath, value: impl Into<Value>, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        let detail = if list.is_empty() { String::new() } else { format!("supported values: {}", list.join(", ")) };
        Self::new(ErrorType::NotSupported, path, Some(value.into()), &detail)
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(path: &FieldPath, value: impl Into<Value>) -> Self {
        Self::new(ErrorType::Duplicate, path, Some(value.into()), "")
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(path: &FieldPath, detail: &str) -> Self {
        Self::new(ErrorType::Forbidden, path, None, detail)
    }

    /// `Too long: may not be more than <max> bytes` (upstream's wording for strings).
    pub fn too_long(path: &FieldPath, max: usize) -> Self {
        Self::new(ErrorType::TooLong, path, None, &format!("may not be more than {max} bytes"))
    }

    /// `Too many: <actual>: must have at most <max> items`.
    pub fn too_many(path: &FieldPath, actual: usize, max: usize) -> Self {
        Self::new(ErrorType::TooMany, path, Some(actual.into()), &format!("must have at most {max} items"))
    }

    /// `Not found: <value>`.
    pub fn not_found(path: &FieldPath, value: impl Into<Value>) -> Self {
        Self::new(ErrorType::NotFound, path, Some(value.into()), "")
    }

    /// Upstream's immutability error: `Invalid value: <value>: field is immutable`.
    pub fn immutable(path: &FieldPath, value: impl Into<Value>) -> Self {
        Self::invalid(path, value, "field is immutable")
    }

    /// The message without the field path, as used in a `StatusCause`.
    pub fn body(&self) -> String {
        let mut s = self.error_type.text().to_string();
        if let Some(v) = &self.bad_value
            && !matches!(
                self.error_type,
                ErrorType::Required | ErrorType::Forbidden | ErrorType::TooLong | ErrorType::Internal
            )
        {
            s.push_str(": ");
            match v {
                Value::String(t) => s.push_str(&format!("{t:?}")),
                Value::Null => s.push_str("null"),
                other => s.push_str(&other.to_string()),
            }
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() { f.write_str(&self.body()) } else { write!(f, "{}: {}", self.field, self.body()) }
    }
}

/// Every problem found in one object; validation collects them all.
pub type FieldErrors = Vec<FieldError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_messages_read_as_upstream() {
        let p = FieldPath::root("spec").child("containers").index(0).child("name");
        assert_eq!(p.as_str(), "spec.containers[0].name");
        assert_eq!(FieldError::required(&p, "").to_string(), "spec.containers[0].name: Required value");
        let e = FieldError::invalid(&FieldPath::root("metadata").child("name"), "Foo", "must be lowercase");
        assert_eq!(e.to_string(), "metadata.name: Invalid value: \"Foo\": must be lowercase");
        let e = FieldError::not_supported(
            &FieldPath::root("spec").child("restartPolicy"),
            "Sometimes",
            &["Always", "Never"],
        );
        assert_eq!(
            e.to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\""
        );
        let e = FieldError::immutable(&FieldPath::root("spec").child("selector"), serde_json::json!({"a": 1}));
        assert_eq!(e.body(), "Invalid value: {\"a\":1}: field is immutable");
    }
}
