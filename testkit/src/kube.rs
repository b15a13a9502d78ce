//! A local stand-in for the Kubernetes API server (none can run here), holding Deployments
//! and their HorizontalPodAutoscalers in one namespace. It serves the calls the origin's
//! scaling hooks make and checks them against the documented API:
//!
//! - `GET|PATCH /apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{name}`
//! - `GET|PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`
//!
//! Every call needs `Authorization: Bearer <token>` (401 otherwise). A PATCH must be a JSON
//! merge patch (`Content-Type: application/merge-patch+json`, 415 otherwise); a
//! `metadata.resourceVersion` in it must match the object's (409 Conflict otherwise, as the
//! API server's optimistic concurrency does); `null` deletes an annotation; `minReplicas`
//! must stay within `1..=maxReplicas` (422 Invalid). Only the fields the hooks write may be
//! patched — anything else is a 422 naming the field, so an unexpected write fails the test.
//! Errors come back as `Status` objects. Like the HPA controller, a raised `minReplicas`
//! lifts the Deployment's replicas to it. Failures can be queued (`fail_next`).

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use crate::Result;
use crate::origin::{Reply, Seen, TestOrigin};

/// One Deployment and its HPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// HPA `minReplicas`.
    pub min: u32,
    /// HPA `maxReplicas`.
    pub max: u32,
    /// Deployment replicas.
    pub replicas: u32,
    /// HPA annotations.
    pub annotations: BTreeMap<String, String>,
    version: u64,
}

#[derive(Default)]
struct State {
    workloads: BTreeMap<String, Workload>,
    failures: VecDeque<u16>,
    patches: Vec<(String, Value)>,
}

/// The stand-in server.
pub struct KubeStandin {
    server: TestOrigin,
    token: String,
    namespace: String,
    state: Arc<Mutex<State>>,
}

fn status(code: u16, reason: &str, message: &str) -> Reply {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    let mut reply = Reply::ok(body.to_string()).header("content-type", "application/json");
    reply.status = code;
    reply
}

fn object(value: Value) -> Reply {
    Reply::ok(value.to_string()).header("content-type", "application/json")
}

fn hpa(namespace: &str, name: &str, w: &Workload) -> Value {
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": name, "namespace": namespace,
            "resourceVersion": w.version.to_string(),
            "annotations": w.annotations,
        },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
            "minReplicas": w.min,
            "maxReplicas": w.max,
            "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 60 } } }],
        },
        "status": {
            "currentReplicas": w.replicas,
            "desiredReplicas": w.replicas.max(w.min),
            "currentMetrics": [{ "type": "Resource", "resource": { "name": "cpu", "current": { "averageUtilization": 42 } } }],
        },
    })
}

fn scale(namespace: &str, name: &str, w: &Workload) -> Value {
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": { "name": name, "namespace": namespace, "resourceVersion": w.version.to_string() },
        "spec": { "replicas": w.replicas },
        "status": { "replicas": w.replicas },
    })
}

/// Checks that `patch` only has keys in `allowed` (a tree of allowed paths).
fn only(patch: &Value, allowed: &Value, at: &str) -> std::result::Result<(), String> {
    let (Some(patch), Some(allowed)) = (patch.as_object(), allowed.as_object()) else {
        return Ok(());
    };
    for (key, value) in patch {
        match allowed.get(key) {
            None => return Err(format!("{at}{key} may not be patched by the scaling hooks")),
            Some(Value::Null) => {}
            Some(sub) => only(value, sub, &format!("{at}{key}."))?,
        }
    }
    Ok(())
}

fn replicas_field(value: &Value, field: &str) -> std::result::Result<u32, Reply> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            status(
                422,
                "Invalid",
                &format!("{field}: must be a non-negative integer"),
            )
        })
}

impl KubeStandin {
    /// Starts on a free port serving `namespace` with these workloads (`name`, min, max,
    /// replicas).
    pub fn start(namespace: &str, workloads: &[(&str, u32, u32, u32)]) -> Result<Self> {
        let token = format!("kube-standin-{:x}", std::process::id() as u64 * 104_729);
        let state = Arc::new(Mutex::new(State {
            workloads: workloads
                .iter()
                .map(|(name, min, max, replicas)| {
                    (
                        (*name).to_string(),
                        Workload {
                            min: *min,
                            max: *max,
                            replicas: *replicas,
                            annotations: BTreeMap::new(),
                            version: 1,
                        },
                    )
                })
                .collect(),
            ..State::default()
        }));
        let handler_state = state.clone();
        let handler_token = token.clone();
        let ns = namespace.to_string();
        let server = TestOrigin::start(move |seen| {
            let mut state = handler_state.lock().unwrap_or_else(|p| p.into_inner());
            handle(&mut state, seen, &handler_token, &ns)
        })?;
        Ok(Self {
            server,
            token,
            namespace: namespace.to_string(),
            state,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The API server URL.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Writes a kubeconfig for this server (token auth, namespace as the context's) into
    /// `dir` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\nusers:\n- name: surge\n  user:\n    token: {}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: surge\n    namespace: {}\ncurrent-context: standin\n",
            self.url(),
            self.token,
            self.namespace
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// One workload's state.
    pub fn workload(&self, name: &str) -> Option<Workload> {
        self.with(|s| s.workloads.get(name).cloned())
    }

    /// Removes a workload (its HPA and Deployment).
    pub fn remove(&self, name: &str) {
        self.with(|s| s.workloads.remove(name));
    }

    /// Answers the next request with this status (403, 409, 500, …) instead of serving it.
    pub fn fail_next(&self, code: u16) {
        self.with(|s| s.failures.push_back(code));
    }

    /// Every accepted patch, as `(path, body)`.
    pub fn patches(&self) -> Vec<(String, Value)> {
        self.with(|s| s.patches.clone())
    }
}

fn handle(state: &mut State, seen: &Seen, token: &str, ns: &str) -> Reply {
    if seen.header("authorization") != Some(format!("Bearer {token}").as_str()) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    if let Some(code) = state.failures.pop_front() {
        let reason = match code {
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            _ => "InternalError",
        };
        return status(code, reason, &format!("{reason} (scripted by the test)"));
    }
    let path = seen.path.split('?').next().unwrap_or(&seen.path);
    let hpa_prefix = format!("/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/");
    let deployment_prefix = format!("/apis/apps/v1/namespaces/{ns}/deployments/");
    let (name, is_scale) = if let Some(name) = path.strip_prefix(&hpa_prefix) {
        (name, false)
    } else if let Some(name) = path
        .strip_prefix(&deployment_prefix)
        .and_then(|rest| rest.strip_suffix("/scale"))
    {
        (name, true)
    } else {
        return status(
            404,
            "NotFound",
            &format!("the server could not find {path}"),
        );
    };
    let kind = if is_scale {
        "deployments.apps"
    } else {
        "horizontalpodautoscalers.autoscaling"
    };
    let Some(w) = state.workloads.get_mut(name) else {
        return status(404, "NotFound", &format!("{kind} \"{name}\" not found"));
    };
    match seen.method.as_str() {
        "GET" if is_scale => object(scale(ns, name, w)),
        "GET" => object(hpa(ns, name, w)),
        "PATCH" => {
            if seen.header("content-type") != Some("application/merge-patch+json") {
                return status(
                    415,
                    "UnsupportedMediaType",
                    "the stand-in takes JSON merge patches (application/merge-patch+json) only",
                );
            }
            let Ok(patch) = serde_json::from_slice::<Value>(&seen.body) else {
                return status(400, "BadRequest", "the patch is not JSON");
            };
            let allowed = if is_scale {
                json!({ "spec": { "replicas": null } })
            } else {
                json!({ "metadata": { "resourceVersion": null, "annotations": null }, "spec": { "minReplicas": null } })
            };
            if let Err(message) = only(&patch, &allowed, "") {
                return status(422, "Invalid", &message);
            }
            if let Some(version) = patch.pointer("/metadata/resourceVersion")
                && version.as_str() != Some(w.version.to_string().as_str())
            {
                return status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                    ),
                );
            }
            if is_scale {
                match patch
                    .pointer("/spec/replicas")
                    .map(|v| replicas_field(v, "spec.replicas"))
                {
                    Some(Ok(n)) => w.replicas = n,
                    Some(Err(reply)) => return reply,
                    None => {}
                }
            } else {
                if let Some(v) = patch.pointer("/spec/minReplicas") {
                    match replicas_field(v, "spec.minReplicas") {
                        Ok(n) if (1..=w.max).contains(&n) => {
                            w.min = n;
                            w.replicas = w.replicas.max(n);
                        }
                        Ok(_) => {
                            return status(
                                422,
                                "Invalid",
                                "spec.minReplicas: must be between 1 and spec.maxReplicas",
                            );
                        }
                        Err(reply) => return reply,
                    }
                }
                if let Some(annotations) = patch
                    .pointer("/metadata/annotations")
                    .and_then(Value::as_object)
                {
                    apply_annotations(&mut w.annotations, annotations);
                }
            }
            w.version += 1;
            let reply = if is_scale {
                scale(ns, name, w)
            } else {
                hpa(ns, name, w)
            };
            state.patches.push((path.to_string(), patch));
            object(reply)
        }
        other => status(
            405,
            "MethodNotAllowed",
            &format!("{other} is not served here"),
        ),
    }
}

fn apply_annotations(annotations: &mut BTreeMap<String, String>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value.as_str() {
            Some(v) => {
                annotations.insert(key.clone(), v.to_string());
            }
            None => {
                annotations.remove(key);
            }
        }
    }
}
