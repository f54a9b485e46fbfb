//! Server-side tables (`meta.k8s.io` `Table`): the columns upstream's printers define for each
//! built-in kind, and the cells of a row computed from an object as JSON.
//!
//! As upstream's `TableConvertor`, every row carries all cells, the `-o wide` ones (priority 1)
//! included; clients hide what they do not show. Kinds without a printer get upstream's default
//! table: `Name` and `Created At`.
//!
//! Key items: [`table`] (a Table from objects), [`printer`] (the printer of a kind), [`Column`],
//! [`Row`], [`IncludeObject`]. Cells are computed from the object in its storage version (the
//! shape upstream's printers see), so kinds served in several versions print alike.

pub mod cluster;
pub mod core;
pub mod format;
pub mod workloads;

use crate::negotiate::{self, MetaVersion};
use crate::status::{ApiError, ApiResult};
use chrono::{DateTime, Utc};
use rudder_api::catalog::Resource;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// One column of a table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// Header text, e.g. `Restarts`.
    pub name: &'static str,
    /// OpenAPI type of the cells: `string`, `integer`, `boolean`, `number`, `date`.
    pub kind: &'static str,
    /// OpenAPI format; `name` marks the column holding the object's name.
    pub format: &'static str,
    /// What the column shows.
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
}

impl Column {
    /// A column shown by default.
    pub const fn new(name: &'static str, kind: &'static str, description: &'static str) -> Column {
        Column { name, kind, format: "", description, priority: 0 }
    }

    /// A column shown only with `-o wide`.
    pub const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
        Column { name, kind, format: "", description, priority: 1 }
    }

    /// The column as a `TableColumnDefinition`.
    pub fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The `Name` column every printer starts with.
pub const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "Name of the object, unique within its namespace (or the cluster for cluster-scoped kinds).",
    priority: 0,
};

/// The `Age` column.
pub const AGE: Column = Column::new("Age", "string", "Time elapsed since the object was created.");

/// Container names of a pod template.
pub const CONTAINERS: Column = Column::wide("Containers", "string", "Names of the containers in the pod template.");

/// Container images of a pod template.
pub const IMAGES: Column = Column::wide("Images", "string", "Images the containers of the pod template run.");

/// One row's content.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// Cells, one per column.
    pub cells: Vec<Value>,
    /// Row conditions (`Completed` for finished pods), when any.
    pub conditions: Option<Value>,
}

impl Row {
    /// A row of plain cells.
    pub fn cells(cells: Vec<Value>) -> Row {
        Row { cells, conditions: None }
    }
}

/// How a kind is printed.
pub struct Printer {
    /// Columns, in order.
    pub columns: &'static [Column],
    /// Computes a row from an object (storage version) at `now`.
    pub row: fn(&Value, DateTime<Utc>) -> Row,
}

/// The printer for a kind of an API group; `None` for kinds upstream prints with the default
/// table.
pub fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    core::printer(group, kind).or_else(|| workloads::printer(group, kind)).or_else(|| cluster::printer(group, kind))
}

const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        kind: "date",
        format: "",
        description: "When the object was created (RFC 3339, UTC).",
        priority: 0,
    },
];

fn default_row(obj: &Value, _now: DateTime<Utc>) -> Row {
    // Upstream formats the zero time too, as Go prints it.
    let created = format::time(format::at(obj, "/metadata/creationTimestamp"))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    Row::cells(vec![json!(format::text(obj, "/metadata/name")), json!(created)])
}

/// Upstream's default table for kinds without a printer: `Name`, `Created At`.
pub static DEFAULT: Printer = Printer { columns: DEFAULT_COLUMNS, row: default_row };

/// What each row of a Table carries besides its cells (the `includeObject` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing (`"object": null`).
    None,
    /// The whole object, in the served version.
    Object,
    /// The object's metadata as a `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
}

impl IncludeObject {
    /// Reads `includeObject`; a value upstream does not know is a 400.
    pub fn parse(value: Option<&str>) -> ApiResult<IncludeObject> {
        match value.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "Object" => Ok(IncludeObject::Object),
            "None" => Ok(IncludeObject::None),
            other => Err(ApiError::bad_request(format!(
                "Unable to convert to Table as requested: includeObject: Unsupported value: {other:?}: \
                 supported values: \"Metadata\", \"None\", \"Object\""
            ))),
        }
    }
}

/// How a Table is to be built.
#[derive(Clone, Copy, Debug)]
pub struct TableOptions {
    /// `meta.k8s.io` version of the Table (and of the rows' `PartialObjectMetadata`).
    pub version: MetaVersion,
    /// What each row carries.
    pub include: IncludeObject,
    /// Whether `columnDefinitions` are sent (watches send them with the first event only).
    pub headers: bool,
}

/// The object a printer reads: the storage version, which is what upstream's printers see.
fn printable<'a>(res: &Resource, obj: &'a Value) -> Cow<'a, Value> {
    if res.api_version() == res.storage_version {
        return Cow::Borrowed(obj);
    }
    match crate::object::to_storage(res, obj.clone()) {
        Ok(v) => Cow::Owned(v),
        Err(_) => Cow::Borrowed(obj),
    }
}

/// A `Table` of `items` (objects in the served version of `res`). `list_meta` becomes the
/// Table's `metadata` (`resourceVersion`, `continue`, `remainingItemCount`).
pub fn table(
    res: &Resource,
    items: &[Value],
    list_meta: Map<String, Value>,
    opts: TableOptions,
    now: DateTime<Utc>,
) -> Value {
    let p = printer(res.group, res.kind).unwrap_or(&DEFAULT);
    let mut order: Vec<usize> = (0..items.len()).collect();
    if res.kind == "FlowSchema" {
        // Upstream lists flow schemas in the order they match requests.
        order.sort_by_cached_key(|&i| {
            (format::int(&items[i], "/spec/matchingPrecedence"), format::text(&items[i], "/metadata/name").to_string())
        });
    }
    let rows: Vec<Value> = order
        .into_iter()
        .map(|i| {
            let item = &items[i];
            let row = (p.row)(&printable(res, item), now);
            let object = match opts.include {
                IncludeObject::Object => item.clone(),
                IncludeObject::Metadata => negotiate::partial_object_metadata(item, opts.version),
                IncludeObject::None => Value::Null,
            };
            let mut r = Map::new();
            r.insert("cells".into(), Value::Array(row.cells));
            if let Some(c) = row.conditions {
                r.insert("conditions".into(), c);
            }
            r.insert("object".into(), object);
            Value::Object(r)
        })
        .collect();
    let columns =
        if opts.headers { Value::Array(p.columns.iter().map(Column::definition).collect()) } else { Value::Null };
    json!({
        "kind": "Table",
        "apiVersion": opts.version.api_version(),
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_catalog_kind_prints_rows_as_wide_as_its_columns() {
        let samples = [
            json!({}),
            json!({"metadata": {"name": "x", "creationTimestamp": "2024-05-01T11:00:00Z"}, "spec": {}, "status": {}}),
        ];
        for res in rudder_api::catalog::all() {
            let p = printer(res.group, res.kind).unwrap_or(&DEFAULT);
            assert!(!p.columns.is_empty(), "{}", res.kind);
            for obj in &samples {
                let row = (p.row)(obj, now());
                assert_eq!(row.cells.len(), p.columns.len(), "{}/{} {}", res.group, res.kind, obj);
            }
            let names = p.columns.iter().filter(|c| c.format == "name").count();
            assert_eq!(names, 1, "{} has one name column", res.kind);
        }
    }

    #[test]
    fn tables_carry_objects_as_asked() {
        let cm = rudder_api::catalog::lookup("", "v1", "configmaps").unwrap();
        let obj = json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "a", "namespace": "d", "resourceVersion": "7", "labels": {"x": "y"}, "creationTimestamp": "2024-05-01T11:59:00Z"},
            "data": {"k": "v", "k2": "v2"},
        });
        let mut meta = Map::new();
        meta.insert("resourceVersion".into(), json!("9"));
        let opts = TableOptions { version: MetaVersion::V1, include: IncludeObject::Metadata, headers: true };
        let t = table(cm, std::slice::from_ref(&obj), meta.clone(), opts, now());
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"]["resourceVersion"], "9");
        let names: Vec<&str> =
            t["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Name", "Data", "Age"]);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["rows"][0]["cells"], json!(["a", 2, "60s"]));
        assert_eq!(
            t["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
        );
        let opts = TableOptions { version: MetaVersion::V1beta1, include: IncludeObject::Object, headers: false };
        let t = table(cm, std::slice::from_ref(&obj), meta.clone(), opts, now());
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(t["columnDefinitions"], Value::Null);
        assert_eq!(t["rows"][0]["object"], obj);
        let opts = TableOptions { version: MetaVersion::V1, include: IncludeObject::None, headers: true };
        let t = table(cm, &[obj], meta, opts, now());
        assert_eq!(t["rows"][0]["object"], Value::Null);
        assert_eq!(IncludeObject::parse(Some("Everything")).unwrap_err().code, 400);
        assert_eq!(IncludeObject::parse(None).unwrap(), IncludeObject::Metadata);
    }

    #[test]
    fn kinds_served_in_other_versions_print_from_their_storage_shape() {
        let opts = TableOptions { version: MetaVersion::V1, include: IncludeObject::Object, headers: true };
        let events = rudder_api::catalog::lookup("events.k8s.io", "v1", "events").unwrap();
        let ev = json!({
            "kind": "Event", "apiVersion": "events.k8s.io/v1",
            "metadata": {"name": "web.1", "namespace": "d"},
            "regarding": {"kind": "Pod", "name": "web"}, "reason": "Started", "type": "Normal", "note": "started",
            "reportingController": "kubelet", "reportingInstance": "n1", "eventTime": "2024-05-01T11:59:00.000000Z",
        });
        let t = table(events, std::slice::from_ref(&ev), Map::new(), opts, now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["60s", "Normal", "Started", "pod/web", "", "kubelet, n1", "started", "60s", 1, "web.1"])
        );
        // The row's object stays in the served version.
        assert_eq!(t["rows"][0]["object"], ev);
        let hpa = rudder_api::catalog::lookup("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let h = json!({
            "kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v1", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 4,
                     "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 1, "desiredReplicas": 1},
        });
        let t = table(hpa, &[h], Map::new(), opts, now());
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap()[1..6],
            [json!("Deployment/web"), json!("cpu: <unknown>/50%"), json!("1"), json!(4), json!(1)]
        );
    }

    #[test]
    fn kinds_without_a_printer_get_name_and_creation_time() {
        let roles = rudder_api::catalog::lookup("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        assert!(printer(roles.group, roles.kind).is_none());
        let row =
            (DEFAULT.row)(&json!({"metadata": {"name": "r", "creationTimestamp": "2024-05-01T11:00:00Z"}}), now());
        assert_eq!(row.cells, [json!("r"), json!("2024-05-01T11:00:00Z")]);
        assert_eq!(DEFAULT.columns[1].name, "Created At");
        assert_eq!(DEFAULT.columns[1].kind, "date");
    }
}
