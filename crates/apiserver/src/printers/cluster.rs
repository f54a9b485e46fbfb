//! Printers of the other groups: networking, discovery, RBAC, certificates, coordination,
//! storage, admission registration, scheduling, node, flow control and API registration.

use super::format::{
    age, at, format_selector, human_duration, int, int_opt, list, load_balancer_points, name, scalar_text, selector,
    text, text_or, with_more,
};
use super::{AGE, Column, NAME, Printer, Row};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The printer of a kind outside the core and workload groups.
pub fn printer(group: &str, kind: &str) -> Option<&'static Printer> {
    Some(match (group, kind) {
        ("networking.k8s.io", "Ingress") => &INGRESS,
        ("networking.k8s.io", "IngressClass") => &INGRESS_CLASS,
        ("networking.k8s.io", "NetworkPolicy") => &NETWORK_POLICY,
        ("networking.k8s.io", "ServiceCIDR") => &SERVICE_CIDR,
        ("networking.k8s.io", "IPAddress") => &IP_ADDRESS,
        ("discovery.k8s.io", "EndpointSlice") => &ENDPOINT_SLICE,
        ("rbac.authorization.k8s.io", "RoleBinding") => &ROLE_BINDING,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => &CLUSTER_ROLE_BINDING,
        ("certificates.k8s.io", "CertificateSigningRequest") => &CERTIFICATE_SIGNING_REQUEST,
        ("coordination.k8s.io", "Lease") => &LEASE,
        ("storage.k8s.io", "StorageClass") => &STORAGE_CLASS,
        ("storage.k8s.io", "VolumeAttachment") => &VOLUME_ATTACHMENT,
        ("storage.k8s.io", "CSINode") => &CSI_NODE,
        ("storage.k8s.io", "CSIDriver") => &CSI_DRIVER,
        ("storage.k8s.io", "CSIStorageCapacity") => &CSI_STORAGE_CAPACITY,
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => &MUTATING_WEBHOOK_CONFIGURATION,
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => &VALIDATING_WEBHOOK_CONFIGURATION,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => &VALIDATING_ADMISSION_POLICY,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => &VALIDATING_ADMISSION_POLICY_BINDING,
        ("scheduling.k8s.io", "PriorityClass") => &PRIORITY_CLASS,
        ("node.k8s.io", "RuntimeClass") => &RUNTIME_CLASS,
        ("flowcontrol.apiserver.k8s.io", "FlowSchema") => &FLOW_SCHEMA,
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration") => &PRIORITY_LEVEL_CONFIGURATION,
        ("apiregistration.k8s.io", "APIService") => &API_SERVICE,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Networking and discovery
// ---------------------------------------------------------------------------------------

/// Ingress columns.
pub static INGRESS: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Class", "string", "The IngressClass that handles the ingress."),
        Column::new("Hosts", "string", "Host names the rules match, up to three."),
        Column::new("Address", "string", "Addresses of the load balancer serving the ingress."),
        Column::new("Ports", "string", "Ports the ingress serves: 80, and 443 with TLS."),
        AGE,
    ],
    row: |ing, now| {
        const MAX: usize = 3;
        let rules = list(ing, "/spec/rules");
        // Up to three hosts; "more" once a rule follows the third host (counted in rules, as
        // upstream does).
        let mut hosts: Vec<&str> = Vec::new();
        let mut more = false;
        for r in rules {
            if hosts.len() == MAX {
                more = true;
                break;
            }
            if !text(r, "/host").is_empty() {
                hosts.push(text(r, "/host"));
            }
        }
        let hosts_text = if hosts.is_empty() {
            "*".to_string()
        } else if more {
            format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
        } else {
            hosts.join(",")
        };
        let addresses = load_balancer_points(list(ing, "/status/loadBalancer/ingress"));
        let ports = if list(ing, "/spec/tls").is_empty() { "80" } else { "80, 443" };
        Row::cells(vec![
            name(ing),
            json!(at(ing, "/spec/ingressClassName").as_str().unwrap_or("<none>")),
            json!(hosts_text),
            json!(addresses),
            json!(ports),
            json!(age(ing, now)),
        ])
    },
};

/// IngressClass columns.
pub static INGRESS_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Controller", "string", "The controller that implements the class."),
        Column::new("Parameters", "string", "The object holding the class's parameters (kind.group/name)."),
        AGE,
    ],
    row: |ic, now| {
        let p = at(ic, "/spec/parameters");
        let parameters = if p.is_object() {
            let mut s = text(p, "/kind").to_string();
            if let Some(g) = at(p, "/apiGroup").as_str() {
                s = format!("{s}.{g}");
            }
            format!("{s}/{}", text(p, "/name"))
        } else {
            "<none>".to_string()
        };
        Row::cells(vec![name(ic), json!(text(ic, "/spec/controller")), json!(parameters), json!(age(ic, now))])
    },
};

/// NetworkPolicy columns.
pub static NETWORK_POLICY: Printer = Printer {
    columns: &[NAME, Column::new("Pod-Selector", "string", "Labels of the pods the policy applies to."), AGE],
    row: |np, now| Row::cells(vec![name(np), json!(format_selector(at(np, "/spec/podSelector"))), json!(age(np, now))]),
};

/// ServiceCIDR columns.
pub static SERVICE_CIDR: Printer = Printer {
    columns: &[NAME, Column::new("CIDRs", "string", "Ranges service IPs are allocated from."), AGE],
    row: |s, now| {
        let cidrs: Vec<&str> = list(s, "/spec/cidrs").iter().filter_map(Value::as_str).collect();
        Row::cells(vec![name(s), json!(cidrs.join(",")), json!(age(s, now))])
    },
};

/// IPAddress columns (upstream defines no Age column here but prints the age; tables follow
/// the columns).
pub static IP_ADDRESS: Printer = Printer {
    columns: &[NAME, Column::new("ParentRef", "string", "The object the address is allocated to.")],
    row: |ip, _| {
        let r = at(ip, "/spec/parentRef");
        let parent = if r.is_object() {
            let resource = text(r, "/resource");
            let mut s = match text(r, "/group") {
                "" => resource.to_lowercase(),
                g => format!("{resource}.{g}").to_lowercase(),
            };
            if !text(r, "/namespace").is_empty() {
                s = format!("{s}/{}", text(r, "/namespace"));
            }
            format!("{s}/{}", text(r, "/name"))
        } else {
            "<none>".to_string()
        };
        Row::cells(vec![name(ip), json!(parent)])
    },
};

/// EndpointSlice columns.
pub static ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("AddressType", "string", "IPv4, IPv6 or FQDN."),
        Column::new("Ports", "string", "Ports of the slice, up to three."),
        Column::new("Endpoints", "string", "Addresses of the slice's endpoints, up to three."),
        AGE,
    ],
    row: |es, now| {
        const MAX: usize = 3;
        let ports = list(es, "/ports");
        let shown: Vec<String> = ports
            .iter()
            .take(MAX)
            .map(|p| match int_opt(p, "/port") {
                Some(n) => n.to_string(),
                None => at(p, "/name").as_str().unwrap_or("*").to_string(),
            })
            .collect();
        let addresses: Vec<&str> =
            list(es, "/endpoints").iter().flat_map(|e| list(e, "/addresses")).filter_map(Value::as_str).collect();
        let shown_addresses: Vec<String> = addresses.iter().take(MAX).map(|s| s.to_string()).collect();
        Row::cells(vec![
            name(es),
            json!(text(es, "/addressType")),
            json!(with_more(&shown, ports.len(), MAX)),
            json!(with_more(&shown_addresses, addresses.len(), MAX)),
            json!(age(es, now)),
        ])
    },
};

// ---------------------------------------------------------------------------------------
// RBAC and certificates
// ---------------------------------------------------------------------------------------

const BINDING_COLUMNS: &[Column] = &[
    NAME,
    Column::new("Role", "string", "The role the binding grants (kind/name)."),
    AGE,
    Column::wide("Users", "string", "Users the binding grants the role to."),
    Column::wide("Groups", "string", "Groups the binding grants the role to."),
    Column::wide("ServiceAccounts", "string", "Service accounts (namespace/name) the binding grants the role to."),
];

fn binding(b: &Value, now: DateTime<Utc>) -> Row {
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for s in list(b, "/subjects") {
        match text(s, "/kind") {
            "ServiceAccount" => accounts.push(format!("{}/{}", text(s, "/namespace"), text(s, "/name"))),
            "User" => users.push(text(s, "/name").to_string()),
            "Group" => groups.push(text(s, "/name").to_string()),
            _ => {}
        }
    }
    Row::cells(vec![
        name(b),
        json!(format!("{}/{}", text(b, "/roleRef/kind"), text(b, "/roleRef/name"))),
        json!(age(b, now)),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(accounts.join(", ")),
    ])
}

/// RoleBinding columns.
pub static ROLE_BINDING: Printer = Printer { columns: BINDING_COLUMNS, row: binding };

/// ClusterRoleBinding columns.
pub static CLUSTER_ROLE_BINDING: Printer = Printer { columns: BINDING_COLUMNS, row: binding };

/// CertificateSigningRequest columns (upstream puts the age second).
pub static CERTIFICATE_SIGNING_REQUEST: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        Column::new("SignerName", "string", "The signer asked to sign the certificate."),
        Column::new("Requestor", "string", "The user who created the request."),
        Column::new("RequestedDuration", "string", "How long the requested certificate should be valid."),
        Column::new("Condition", "string", "Approved or Denied (else Pending), plus Failed and Issued."),
    ],
    row: |csr, now| {
        let mut approved = false;
        let mut denied = false;
        let mut failed = false;
        for c in list(csr, "/status/conditions") {
            match text(c, "/type") {
                "Approved" => approved = true,
                "Denied" => denied = true,
                "Failed" => failed = true,
                _ => {}
            }
        }
        let mut condition = if denied {
            "Denied"
        } else if approved {
            "Approved"
        } else {
            "Pending"
        }
        .to_string();
        if failed {
            condition.push_str(",Failed");
        }
        if !text(csr, "/status/certificate").is_empty() {
            condition.push_str(",Issued");
        }
        let duration = match int_opt(csr, "/spec/expirationSeconds") {
            Some(s) => human_duration(s.saturating_mul(1000)),
            None => "<none>".to_string(),
        };
        Row::cells(vec![
            name(csr),
            json!(age(csr, now)),
            json!(text_or(csr, "/spec/signerName", "<none>")),
            json!(text(csr, "/spec/username")),
            json!(duration),
            json!(condition),
        ])
    },
};

/// Lease columns.
pub static LEASE: Printer = Printer {
    columns: &[NAME, Column::new("Holder", "string", "Who holds the lease now."), AGE],
    row: |l, now| Row::cells(vec![name(l), json!(text(l, "/spec/holderIdentity")), json!(age(l, now))]),
};

// ---------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------

/// StorageClass columns.
pub static STORAGE_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Provisioner", "string", "The driver that provisions volumes of the class."),
        Column::new("ReclaimPolicy", "string", "What happens to a released volume: Delete or Retain."),
        Column::new("VolumeBindingMode", "string", "When volumes are bound: Immediate or WaitForFirstConsumer."),
        Column::new("AllowVolumeExpansion", "string", "Whether claims of the class may grow."),
        AGE,
    ],
    row: |sc, now| {
        let is_default = |key: &str| text(sc, &format!("/metadata/annotations/{key}")) == "true";
        let mut n = text(sc, "/metadata/name").to_string();
        if is_default("storageclass.kubernetes.io~1is-default-class")
            || is_default("storageclass.beta.kubernetes.io~1is-default-class")
        {
            n.push_str(" (default)");
        }
        Row::cells(vec![
            json!(n),
            json!(text(sc, "/provisioner")),
            json!(text_or(sc, "/reclaimPolicy", "Delete")),
            json!(text_or(sc, "/volumeBindingMode", "Immediate")),
            json!(at(sc, "/allowVolumeExpansion").as_bool().unwrap_or(false)),
            json!(age(sc, now)),
        ])
    },
};

/// VolumeAttachment columns.
pub static VOLUME_ATTACHMENT: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Attacher", "string", "The volume driver that attaches the volume."),
        Column::new("PV", "string", "The persistent volume to attach."),
        Column::new("Node", "string", "The node to attach the volume to."),
        Column::new("Attached", "boolean", "Whether the volume is attached."),
        AGE,
    ],
    row: |va, now| {
        Row::cells(vec![
            name(va),
            json!(text(va, "/spec/attacher")),
            json!(text(va, "/spec/source/persistentVolumeName")),
            json!(text(va, "/spec/nodeName")),
            json!(at(va, "/status/attached").as_bool().unwrap_or(false)),
            json!(age(va, now)),
        ])
    },
};

/// CSINode columns.
pub static CSI_NODE: Printer = Printer {
    columns: &[NAME, Column::new("Drivers", "integer", "Number of CSI drivers registered on the node."), AGE],
    row: |n, now| Row::cells(vec![name(n), json!(list(n, "/spec/drivers").len() as i64), json!(age(n, now))]),
};

/// CSIDriver columns.
pub static CSI_DRIVER: Printer = Printer {
    columns: &[
        NAME,
        Column::new("AttachRequired", "boolean", "Whether volumes need an attach step."),
        Column::new("PodInfoOnMount", "boolean", "Whether mounts receive information about the pod."),
        Column::new("StorageCapacity", "boolean", "Whether the driver reports storage capacity."),
        Column::new("TokenRequests", "string", "Audiences of the service account tokens the driver receives."),
        Column::new("RequiresRepublish", "boolean", "Whether volumes are mounted again periodically."),
        Column::new("Modes", "string", "Volume lifecycle modes the driver supports."),
        AGE,
    ],
    row: |d, now| {
        let flag = |p: &str, default: bool| at(d, p).as_bool().unwrap_or(default);
        let tokens = match at(d, "/spec/tokenRequests").as_array() {
            Some(t) => t.iter().map(|r| text(r, "/audience")).collect::<Vec<_>>().join(","),
            None => "<unset>".to_string(),
        };
        let modes: Vec<&str> = list(d, "/spec/volumeLifecycleModes").iter().filter_map(Value::as_str).collect();
        Row::cells(vec![
            name(d),
            json!(flag("/spec/attachRequired", true)),
            json!(flag("/spec/podInfoOnMount", false)),
            json!(flag("/spec/storageCapacity", false)),
            json!(tokens),
            json!(flag("/spec/requiresRepublish", false)),
            json!(if modes.is_empty() { "<none>".to_string() } else { modes.join(",") }),
            json!(age(d, now)),
        ])
    },
};

/// CSIStorageCapacity columns (no age upstream).
pub static CSI_STORAGE_CAPACITY: Printer = Printer {
    columns: &[
        NAME,
        Column::new("StorageClassName", "string", "The storage class the capacity is for."),
        Column::new("Capacity", "string", "Capacity available for new volumes."),
    ],
    row: |c, _| {
        Row::cells(vec![
            name(c),
            json!(text(c, "/storageClassName")),
            json!(scalar_text(at(c, "/capacity")).unwrap_or_else(|| "<unset>".to_string())),
        ])
    },
};

// ---------------------------------------------------------------------------------------
// Admission, scheduling, node, flow control, API registration
// ---------------------------------------------------------------------------------------

const WEBHOOK_COLUMNS: &[Column] =
    &[NAME, Column::new("Webhooks", "integer", "Number of webhooks the configuration registers."), AGE];

fn webhooks(w: &Value, now: DateTime<Utc>) -> Row {
    Row::cells(vec![name(w), json!(list(w, "/webhooks").len() as i64), json!(age(w, now))])
}

/// MutatingWebhookConfiguration columns.
pub static MUTATING_WEBHOOK_CONFIGURATION: Printer = Printer { columns: WEBHOOK_COLUMNS, row: webhooks };

/// ValidatingWebhookConfiguration columns.
pub static VALIDATING_WEBHOOK_CONFIGURATION: Printer = Printer { columns: WEBHOOK_COLUMNS, row: webhooks };

/// ValidatingAdmissionPolicy columns.
pub static VALIDATING_ADMISSION_POLICY: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Validations", "integer", "Number of validation rules of the policy."),
        Column::new("ParamKind", "string", "Kind of the objects that parameterize the policy."),
        AGE,
    ],
    row: |p, now| {
        let param = at(p, "/spec/paramKind");
        let kind = if param.is_object() {
            format!("{}/{}", text(param, "/apiVersion"), text(param, "/kind"))
        } else {
            "<unset>".to_string()
        };
        Row::cells(vec![name(p), json!(list(p, "/spec/validations").len() as i64), json!(kind), json!(age(p, now))])
    },
};

/// ValidatingAdmissionPolicyBinding columns.
pub static VALIDATING_ADMISSION_POLICY_BINDING: Printer = Printer {
    columns: &[
        NAME,
        Column::new("PolicyName", "string", "The policy the binding applies."),
        Column::new("ParamRef", "string", "The object (or selector) that parameterizes the policy."),
        AGE,
    ],
    row: |b, now| {
        let r = at(b, "/spec/paramRef");
        let param = if !r.is_object() {
            "<unset>".to_string()
        } else if !text(r, "/name").is_empty() {
            match text(r, "/namespace") {
                "" => format!("*/{}", text(r, "/name")),
                ns => format!("{ns}/{}", text(r, "/name")),
            }
        } else if at(r, "/selector").is_object() {
            selector(at(r, "/selector")).unwrap_or_default()
        } else {
            "<unset>".to_string()
        };
        Row::cells(vec![name(b), json!(text(b, "/spec/policyName")), json!(param), json!(age(b, now))])
    },
};

/// PriorityClass columns.
pub static PRIORITY_CLASS: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Value", "integer", "The priority pods of the class get."),
        Column::new("Global-Default", "boolean", "Whether pods without a class get this one."),
        AGE,
        Column::new("PreemptionPolicy", "string", "Whether pods of the class may preempt others."),
    ],
    row: |pc, now| {
        Row::cells(vec![
            name(pc),
            json!(int(pc, "/value")),
            json!(at(pc, "/globalDefault").as_bool().unwrap_or(false)),
            json!(age(pc, now)),
            json!(text(pc, "/preemptionPolicy")),
        ])
    },
};

/// RuntimeClass columns.
pub static RUNTIME_CLASS: Printer = Printer {
    columns: &[NAME, Column::new("Handler", "string", "The container runtime handler pods of the class use."), AGE],
    row: |rc, now| Row::cells(vec![name(rc), json!(text(rc, "/handler")), json!(age(rc, now))]),
};

/// FlowSchema columns.
pub static FLOW_SCHEMA: Printer = Printer {
    columns: &[
        NAME,
        Column::new("PriorityLevel", "string", "The priority level matching requests are assigned."),
        Column::new("MatchingPrecedence", "string", "Order in which schemas are tried; lower first."),
        Column::new("DistinguisherMethod", "string", "How requests are split into flows: ByUser or ByNamespace."),
        AGE,
        Column::new("MissingPL", "string", "Whether the priority level it names does not exist."),
    ],
    row: |fs, now| {
        let dangling = list(fs, "/status/conditions")
            .iter()
            .find(|c| text(c, "/type") == "Dangling")
            .map(|c| text(c, "/status"))
            .unwrap_or("?");
        Row::cells(vec![
            name(fs),
            json!(text(fs, "/spec/priorityLevelConfiguration/name")),
            json!(int(fs, "/spec/matchingPrecedence")),
            json!(text_or(fs, "/spec/distinguisherMethod/type", "<none>")),
            json!(age(fs, now)),
            json!(dangling),
        ])
    },
};

/// PriorityLevelConfiguration columns.
pub static PRIORITY_LEVEL_CONFIGURATION: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Type", "string", "Limited or Exempt."),
        Column::new("NominalConcurrencyShares", "string", "Share of the server's concurrency the level gets."),
        Column::new("Queues", "string", "Number of queues of the level."),
        Column::new("HandSize", "string", "Queues each flow is dealt (shuffle sharding)."),
        Column::new("QueueLengthLimit", "string", "Requests each queue holds at most."),
        AGE,
    ],
    row: |pl, now| {
        let limited = at(pl, "/spec/limited");
        let none = || json!("<none>");
        let (shares, queues, hand, length) = if limited.is_object() {
            let queuing = at(limited, "/limitResponse/queuing");
            let field = |p: &str| if queuing.is_object() { json!(int(queuing, p)) } else { none() };
            (
                json!(int(limited, "/nominalConcurrencyShares")),
                field("/queues"),
                field("/handSize"),
                field("/queueLengthLimit"),
            )
        } else {
            (none(), none(), none(), none())
        };
        Row::cells(vec![name(pl), json!(text(pl, "/spec/type")), shares, queues, hand, length, json!(age(pl, now))])
    },
};

/// APIService columns (from the aggregator's own table).
pub static API_SERVICE: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Service", "string", "The service behind the API (namespace/name), or Local."),
        Column::new("Available", "string", "The Available condition, with its reason when not True."),
        AGE,
    ],
    row: |a, now| {
        let service = match at(a, "/spec/service") {
            s if s.is_object() => format!("{}/{}", text(s, "/namespace"), text(s, "/name")),
            _ => "Local".to_string(),
        };
        let available = match list(a, "/status/conditions").iter().find(|c| text(c, "/type") == "Available") {
            None => "Unknown".to_string(),
            Some(c) => match (text(c, "/status"), text(c, "/reason")) {
                ("True", _) => "True".to_string(),
                (s, "") => s.to_string(),
                (s, r) => format!("{s} ({r})"),
            },
        };
        Row::cells(vec![name(a), json!(service), json!(available), json!(age(a, now))])
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn cells(p: &Printer, obj: Value) -> Vec<Value> {
        (p.row)(&obj, now()).cells
    }

    #[test]
    fn ingresses_slices_and_bindings() {
        let ing = json!({
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example"}, {}, {"host": "b.example"}], "tls": [{}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
        });
        assert_eq!(
            cells(&INGRESS, ing)[1..5],
            [json!("nginx"), json!("a.example,b.example"), json!("192.0.2.1"), json!("80, 443")]
        );
        let es = json!({
            "metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "metrics"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"]}],
        });
        assert_eq!(
            cells(&ENDPOINT_SLICE, es)[1..4],
            [json!("IPv4"), json!("80,metrics"), json!("10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...")]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4"});
        assert_eq!(cells(&ENDPOINT_SLICE, empty)[2..4], [json!("<unset>"), json!("<unset>")]);
        let rb = json!({
            "metadata": {"name": "admins"}, "roleRef": {"kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "ops"},
                         {"kind": "ServiceAccount", "namespace": "ci", "name": "bot"}, {"kind": "User", "name": "bob"}],
        });
        assert_eq!(
            cells(&ROLE_BINDING, rb)[1..6],
            [json!("ClusterRole/admin"), json!("<unknown>"), json!("alice, bob"), json!("ops"), json!("ci/bot")]
        );
    }

    #[test]
    fn storage_certificates_and_services() {
        let sc = json!({"metadata": {"name": "fast", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                        "provisioner": "csi.example"});
        assert_eq!(
            cells(&STORAGE_CLASS, sc)[..5],
            [json!("fast (default)"), json!("csi.example"), json!("Delete"), json!("Immediate"), json!(false)]
        );
        let csr = json!({"metadata": {"name": "c"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice", "expirationSeconds": 86400},
                         "status": {"conditions": [{"type": "Approved"}], "certificate": "Zm9v"}});
        assert_eq!(
            cells(&CERTIFICATE_SIGNING_REQUEST, csr)[2..6],
            [json!("kubernetes.io/kube-apiserver-client"), json!("alice"), json!("24h"), json!("Approved,Issued")]
        );
        let local =
            json!({"metadata": {"name": "v1."}, "status": {"conditions": [{"type": "Available", "status": "True"}]}});
        assert_eq!(cells(&API_SERVICE, local)[1..3], [json!("Local"), json!("True")]);
        let remote = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {"service": {"namespace": "kube-system", "name": "metrics"}},
                            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        assert_eq!(
            cells(&API_SERVICE, remote)[1..3],
            [json!("kube-system/metrics"), json!("False (MissingEndpoints)")]
        );
    }
}
