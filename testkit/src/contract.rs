//! Requests driven by an OpenAPI 3.1 document: random instances that conform to a schema
//! (strings from their `pattern`, numbers within their bounds, objects with their required
//! and some optional properties), every single-constraint violation of a valid instance,
//! and a conformance check — for the contract test and the fuzzer against a live origin.
//!
//! The schema subset is what the origin's document uses: `type` (also as a list with
//! `null`), `enum`, `const`, `$ref`, `oneOf`/`anyOf`/`allOf`, `pattern`, `minLength`,
//! `maxLength`, `format: date-time`, `minimum`, `maximum`, `items`, `minItems`, `maxItems`,
//! `properties`, `required`, `additionalProperties` (false or a schema), `propertyNames`,
//! `minProperties`, `maxProperties`. Rules beyond JSON Schema are read from
//! `x-surge-checks`.

use std::collections::HashMap;
use std::sync::Mutex;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};

/// One operation of the document.
#[derive(Debug, Clone)]
pub struct Operation {
    /// `get`, `post`, `delete`, …
    pub method: String,
    /// The path template (`/api/elections/{id}`).
    pub path: String,
    /// Path and query parameters.
    pub parameters: Vec<Parameter>,
    /// The JSON request body's schema, when the operation takes one.
    pub body: Option<Value>,
    /// Documented response statuses.
    pub statuses: Vec<u16>,
    /// Names of the security schemes it needs (`bearer`, `session`).
    pub security: Vec<String>,
}

/// One path or query parameter.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// Its name.
    pub name: String,
    /// `path` or `query`.
    pub location: String,
    /// Whether it must be sent.
    pub required: bool,
    /// Its schema.
    pub schema: Value,
}

impl Operation {
    /// `METHOD path`, for messages.
    pub fn name(&self) -> String {
        format!("{} {}", self.method.to_uppercase(), self.path)
    }

    /// The path with `values` filled in (percent-encoded) and the query parameters among
    /// them appended.
    pub fn target(&self, values: &Map<String, Value>) -> String {
        let mut path = self.path.clone();
        let mut query = Vec::new();
        for p in &self.parameters {
            let Some(value) = values.get(&p.name) else {
                continue;
            };
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if p.location == "path" {
                path = path.replace(&format!("{{{}}}", p.name), &encode(&text));
            } else {
                query.push(format!("{}={}", encode(&p.name), encode(&text)));
            }
        }
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query.join("&"));
        }
        path
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request body (or parameter value) that breaks exactly one constraint.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The field the validator's error should name (`voters[0].voter_id`, `.` for the body).
    pub field: String,
    /// The keyword broken (`pattern`, `maxItems`, …).
    pub keyword: String,
    /// The whole body (or parameter value) to send.
    pub value: Value,
}

/// A rule JSON Schema cannot state, from `x-surge-checks`.
#[derive(Debug, Clone)]
pub struct Check {
    /// The field its error names, `[]` standing for any index.
    pub field: String,
    /// What it says.
    pub rule: String,
    /// A body that breaks it.
    pub example: Value,
}

/// Texts tried, in order, as a string that breaks a `pattern`.
const NON_MATCHING: [&str; 14] = [
    "",
    " ",
    "*",
    "a,b",
    "https://*",
    "surge:v1:*",
    "bad value!",
    "\u{7f}",
    "é",
    "-",
    "a",
    "1",
    "https://a.b/c",
    "surge:v1:x",
];
/// Texts tried, in order, as a map key that breaks `propertyNames`.
const BAD_NAMES: [&str; 4] = ["Bad Name", "-", "UPPER", "a_b"];

/// An OpenAPI document to draw requests from.
pub struct Contract {
    doc: Value,
    regexes: Mutex<HashMap<String, regex::Regex>>,
}

impl Contract {
    /// Wraps a document.
    pub fn new(doc: Value) -> Self {
        Self {
            doc,
            regexes: Mutex::new(HashMap::new()),
        }
    }

    /// Every operation, in path order.
    pub fn operations(&self) -> Vec<Operation> {
        let mut out = Vec::new();
        let Some(paths) = self.doc["paths"].as_object() else {
            return out;
        };
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let parameters = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .map(|p| Parameter {
                                name: p["name"].as_str().unwrap_or_default().to_string(),
                                location: p["in"].as_str().unwrap_or_default().to_string(),
                                required: p["required"].as_bool().unwrap_or(false),
                                schema: p["schema"].clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let body = op
                    .pointer("/requestBody/content/application~1json/schema")
                    .cloned();
                let statuses = op["responses"]
                    .as_object()
                    .map(|r| r.keys().filter_map(|k| k.parse().ok()).collect())
                    .unwrap_or_default();
                let security = op["security"]
                    .as_array()
                    .map(|reqs| {
                        reqs.iter()
                            .filter_map(Value::as_object)
                            .flat_map(|r| r.keys().cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Operation {
                    method: method.clone(),
                    path: path.clone(),
                    parameters,
                    body,
                    statuses,
                    security,
                });
            }
        }
        out
    }

    /// The schema `schema` stands for, following `$ref`s.
    pub fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        while let Some(reference) = schema["$ref"].as_str() {
            let pointer = reference.trim_start_matches('#');
            match self.doc.pointer(pointer) {
                Some(target) => schema = target,
                None => panic!("{reference} names nothing in the document"),
            }
        }
        schema
    }

    /// The JSON response schema documented for `status`, when there is one.
    pub fn response_schema(&self, operation: &Operation, status: u16) -> Option<Value> {
        self.doc["paths"][&operation.path][&operation.method]["responses"][status.to_string()]
            .pointer("/content/application~1json/schema")
            .cloned()
    }

    /// The `x-surge-checks` of `schema`.
    pub fn checks(&self, schema: &Value) -> Vec<Check> {
        self.resolve(schema)["x-surge-checks"]
            .as_array()
            .map(|checks| {
                checks
                    .iter()
                    .map(|c| Check {
                        field: c["field"].as_str().unwrap_or_default().to_string(),
                        rule: c["rule"].as_str().unwrap_or_default().to_string(),
                        example: c["example"].clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A random instance of `schema`.
    pub fn generate(&self, schema: &Value, rng: &mut fastrand::Rng) -> Value {
        let s = self.resolve(schema);
        if let Some(v) = s.get("const") {
            return v.clone();
        }
        if let Some(options) = s["enum"].as_array().filter(|o| !o.is_empty()) {
            return options[rng.usize(..options.len())].clone();
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = s[key].as_array().filter(|b| !b.is_empty()) {
                return self.generate(&branches[rng.usize(..branches.len())], rng);
            }
        }
        if let Some(parts) = s["allOf"].as_array() {
            let mut merged = Map::new();
            for part in parts {
                if let Value::Object(o) = self.generate(part, rng) {
                    merged.extend(o);
                }
            }
            return Value::Object(merged);
        }
        match pick_type(s, rng).as_str() {
            "null" => Value::Null,
            "boolean" => Value::Bool(rng.bool()),
            "integer" => integer(s, rng),
            "number" => json!(rng.f64() * 1000.0),
            "array" => {
                let (min, max) = counts(s, "minItems", "maxItems");
                let n = rng.usize(min..=max.min(min + 3));
                Value::Array((0..n).map(|_| self.generate(&s["items"], rng)).collect())
            }
            "object" => self.object(s, rng),
            _ => Value::String(self.string(s, rng)),
        }
    }

    fn object(&self, s: &Value, rng: &mut fastrand::Rng) -> Value {
        let mut out = Map::new();
        let required = required(s);
        if let Some(properties) = s["properties"].as_object() {
            for (name, schema) in properties {
                if required.contains(&name.as_str()) || rng.bool() {
                    out.insert(name.clone(), self.generate(schema, rng));
                }
            }
        }
        if s["additionalProperties"].is_object() {
            let (min, max) = counts(s, "minProperties", "maxProperties");
            let n = rng.usize(min..=max.min(min + 2));
            let names = s.get("propertyNames").cloned().unwrap_or(json!({}));
            for _ in 0..n {
                let name = match self.generate(&names, rng) {
                    Value::String(n) => n,
                    other => other.to_string(),
                };
                out.insert(name, self.generate(&s["additionalProperties"], rng));
            }
        }
        Value::Object(out)
    }

    fn string(&self, s: &Value, rng: &mut fastrand::Rng) -> String {
        if s["format"] == "date-time" {
            return format!(
                "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                rng.u8(20..40),
                rng.u8(1..13),
                rng.u8(1..29),
                rng.u8(0..24),
                rng.u8(0..60),
                rng.u8(0..60)
            );
        }
        let min = s["minLength"].as_u64().map_or(0, to_usize);
        let max = s["maxLength"].as_u64().map_or(usize::MAX, to_usize);
        for _ in 0..200 {
            let text = match s["pattern"].as_str() {
                Some(pattern) => from_regex(pattern, rng),
                None => random_text(rng, min, max.min(min + 24)),
            };
            let n = text.chars().count();
            if (min..=max).contains(&n) {
                return text;
            }
        }
        panic!("no string for {s} in 200 tries: make its pattern and lengths agree")
    }

    /// Whether `value` conforms to `schema`; the first breach, with where it is, if not.
    pub fn conforms(&self, schema: &Value, value: &Value) -> Result<(), String> {
        self.conforms_at(schema, value, ".")
    }

    fn conforms_at(&self, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        let s = self.resolve(schema);
        let fail = |what: String| Err(format!("{at}: {what} (value {value})"));
        if let Some(c) = s.get("const")
            && c != value
        {
            return fail(format!("not the constant {c}"));
        }
        if let Some(options) = s["enum"].as_array()
            && !options.contains(value)
        {
            return fail("not one of the enum".into());
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(branches) = s[key].as_array()
                && !branches
                    .iter()
                    .any(|b| self.conforms_at(b, value, at).is_ok())
            {
                return fail(format!("matches no branch of {key}"));
            }
        }
        if let Some(parts) = s["allOf"].as_array() {
            for part in parts {
                self.conforms_at(part, value, at)?;
            }
        }
        if let Some(types) = types(s)
            && !types.iter().any(|t| kind_matches(t, value))
        {
            return fail(format!("not of type {}", types.join(" or ")));
        }
        match value {
            Value::String(text) => self.string_conforms(s, text).or_else(fail),
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if s["minimum"].as_f64().is_some_and(|m| x < m) {
                    return fail(format!("below the minimum {}", s["minimum"]));
                }
                if s["maximum"].as_f64().is_some_and(|m| x > m) {
                    return fail(format!("above the maximum {}", s["maximum"]));
                }
                Ok(())
            }
            Value::Array(items) => {
                let (min, max) = counts(s, "minItems", "maxItems");
                if !(min..=max).contains(&items.len()) {
                    return fail(format!("{} items, not {min}..={max}", items.len()));
                }
                for (i, item) in items.iter().enumerate() {
                    self.conforms_at(&s["items"], item, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            Value::Object(fields) => self.object_conforms(s, fields, at),
            _ => Ok(()),
        }
    }

    fn string_conforms(&self, s: &Value, text: &str) -> Result<(), String> {
        let n = text.chars().count();
        let min = s["minLength"].as_u64().map_or(0, to_usize);
        let max = s["maxLength"].as_u64().map_or(usize::MAX, to_usize);
        if !(min..=max).contains(&n) {
            return Err(format!("{n} characters, not {min}..={max}"));
        }
        if let Some(pattern) = s["pattern"].as_str()
            && !self.matches(pattern, text)
        {
            return Err(format!("does not match {pattern}"));
        }
        if s["format"] == "date-time" && !self.matches(DATE_TIME, text) {
            return Err("not an RFC 3339 date-time".into());
        }
        Ok(())
    }

    fn object_conforms(
        &self,
        s: &Value,
        fields: &Map<String, Value>,
        at: &str,
    ) -> Result<(), String> {
        for name in required(s) {
            if !fields.contains_key(name) {
                return Err(format!("{at}: required {name:?} is missing"));
            }
        }
        let properties = s["properties"].as_object();
        let (min, max) = counts(s, "minProperties", "maxProperties");
        if !(min..=max).contains(&fields.len()) {
            return Err(format!(
                "{at}: {} properties, not {min}..={max}",
                fields.len()
            ));
        }
        for (name, value) in fields {
            let here = join(at, name);
            match properties.and_then(|p| p.get(name)) {
                Some(schema) => self.conforms_at(schema, value, &here)?,
                None => match &s["additionalProperties"] {
                    Value::Bool(false) => return Err(format!("{here}: not a known property")),
                    extra @ Value::Object(_) => {
                        if let Some(names) = s.get("propertyNames") {
                            self.conforms_at(names, &json!(name), &here)?;
                        }
                        self.conforms_at(extra, value, &here)?;
                    }
                    _ => {}
                },
            }
        }
        Ok(())
    }

    /// Every single-constraint violation of `valid` (an instance of `schema`), each naming
    /// the field its error should name.
    pub fn violations(
        &self,
        schema: &Value,
        valid: &Value,
        rng: &mut fastrand::Rng,
    ) -> Vec<Violation> {
        let mut found = Vec::new();
        self.violate(schema, valid, ".", "", rng, &mut found);
        found
            .into_iter()
            .map(|(field, keyword, pointer, replacement)| {
                let mut value = valid.clone();
                match value.pointer_mut(&pointer) {
                    Some(slot) => *slot = replacement,
                    None => value = replacement,
                }
                Violation {
                    field,
                    keyword,
                    value,
                }
            })
            .collect()
    }

    /// Pushes `(field, keyword, pointer, replacement)` for every constraint at and below
    /// `value`.
    fn violate(
        &self,
        schema: &Value,
        value: &Value,
        field: &str,
        pointer: &str,
        rng: &mut fastrand::Rng,
        out: &mut Vec<(String, String, String, Value)>,
    ) {
        let s = self.resolve(schema);
        let mut push = |keyword: &str, replacement: Value| {
            out.push((
                field.to_string(),
                keyword.to_string(),
                pointer.to_string(),
                replacement,
            ));
        };
        if let Some(types) = types(s) {
            let wrong = [json!(true), json!("text"), json!(7), json!([]), json!({})]
                .into_iter()
                .find(|v| !types.iter().any(|t| kind_matches(t, v)));
            if let Some(wrong) = wrong {
                push("type", wrong);
            }
        }
        if s["enum"].is_array() {
            push("enum", json!("not-a-member"));
        }
        match value {
            Value::String(text) => {
                let min = s["minLength"].as_u64().map_or(0, to_usize);
                if min > 0 {
                    push(
                        "minLength",
                        json!(text.chars().take(min - 1).collect::<String>()),
                    );
                }
                if let Some(max) = s["maxLength"].as_u64().map(to_usize) {
                    let fill = text.chars().last().unwrap_or('a');
                    let mut long: String = text.chars().take(max).collect();
                    while long.chars().count() <= max {
                        long.push(fill);
                    }
                    push("maxLength", json!(long));
                }
                if let Some(pattern) = s["pattern"].as_str() {
                    let Some(bad) = NON_MATCHING.iter().find(|t| !self.matches(pattern, t)) else {
                        panic!("no text in NON_MATCHING breaks {pattern}: add one");
                    };
                    push("pattern", json!(bad));
                }
                if s["format"] == "date-time" {
                    push("format", json!("tomorrow"));
                }
            }
            Value::Number(_) => {
                if let Some(below) = s["minimum"].as_i64().and_then(|m| m.checked_sub(1)) {
                    push("minimum", json!(below));
                }
                if let Some(above) = s["maximum"].as_i64().and_then(|m| m.checked_add(1)) {
                    push("maximum", json!(above));
                }
            }
            Value::Array(items) => {
                let (min, max) = counts(s, "minItems", "maxItems");
                if min > 0 {
                    push(
                        "minItems",
                        Value::Array(items[..(min - 1).min(items.len())].to_vec()),
                    );
                }
                if max < usize::MAX {
                    let mut long = items.clone();
                    while long.len() <= max {
                        long.push(self.generate(&s["items"], rng));
                    }
                    push("maxItems", Value::Array(long));
                }
                let first = match items.first() {
                    Some(item) => item.clone(),
                    None => self.generate(&s["items"], rng),
                };
                let mut with_one = items.clone();
                if with_one.is_empty() {
                    with_one.push(first.clone());
                }
                // Violations inside the first item, against an array that has one.
                let mut inner = Vec::new();
                let item_field = format!("{}[0]", strip_root(field));
                let item_pointer = format!("{pointer}/0");
                self.violate(
                    &s["items"],
                    &first,
                    &item_field,
                    &item_pointer,
                    rng,
                    &mut inner,
                );
                for (f, k, p, r) in inner {
                    let mut array = with_one.clone();
                    array[0] = replace_at(&first, &p[item_pointer.len()..], r);
                    out.push((f, k, pointer.to_string(), Value::Array(array)));
                }
            }
            Value::Object(fields) => self.violate_object(s, fields, field, pointer, rng, out),
            _ => {}
        }
    }

    fn violate_object(
        &self,
        s: &Value,
        fields: &Map<String, Value>,
        field: &str,
        pointer: &str,
        rng: &mut fastrand::Rng,
        out: &mut Vec<(String, String, String, Value)>,
    ) {
        let mut push = |f: String, keyword: &str, replacement: Map<String, Value>| {
            out.push((
                f,
                keyword.to_string(),
                pointer.to_string(),
                Value::Object(replacement),
            ));
        };
        for name in required(s) {
            let mut without = fields.clone();
            without.remove(name);
            push(field.to_string(), "required", without);
        }
        if s["additionalProperties"] == json!(false) {
            let mut extra = fields.clone();
            extra.insert("unexpected".into(), json!(1));
            push(join(field, "unexpected"), "additionalProperties", extra);
        }
        let (min, _) = counts(s, "minProperties", "maxProperties");
        if min > 0 {
            push(
                field.to_string(),
                "minProperties",
                fields
                    .iter()
                    .take(min - 1)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            );
        }
        if let Some(names) = s.get("propertyNames") {
            let names = self.resolve(names);
            if let Some(pattern) = names["pattern"].as_str() {
                let Some(bad) = BAD_NAMES.iter().find(|n| !self.matches(pattern, n)) else {
                    panic!("no name in BAD_NAMES breaks {pattern}: add one");
                };
                let mut extra = fields.clone();
                extra.insert(
                    (*bad).to_string(),
                    self.generate(&s["additionalProperties"], rng),
                );
                push(join(field, bad), "propertyNames", extra);
            }
        }
        // Violations inside each property (optional ones absent from the instance get a
        // generated value first) and inside the first entry of a map.
        let mut inside: Vec<(String, Value, Value)> = Vec::new();
        if let Some(properties) = s["properties"].as_object() {
            for (name, schema) in properties {
                let value = fields
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| self.generate_present(schema, rng));
                inside.push((name.clone(), schema.clone(), value));
            }
        }
        if s["additionalProperties"].is_object() {
            let known = s["properties"].as_object();
            if let Some((name, value)) = fields
                .iter()
                .find(|(k, _)| known.is_none_or(|p| !p.contains_key(*k)))
            {
                inside.push((
                    name.clone(),
                    s["additionalProperties"].clone(),
                    value.clone(),
                ));
            }
        }
        for (name, schema, value) in inside {
            let child_pointer = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
            let mut inner = Vec::new();
            self.violate(
                &schema,
                &value,
                &join(field, &name),
                &child_pointer,
                rng,
                &mut inner,
            );
            for (f, k, p, r) in inner {
                let mut object = fields.clone();
                object.insert(
                    name.clone(),
                    replace_at(&value, &p[child_pointer.len()..], r),
                );
                out.push((f, k, pointer.to_string(), Value::Object(object)));
            }
        }
    }

    /// A random instance of `schema` that is not `null`.
    fn generate_present(&self, schema: &Value, rng: &mut fastrand::Rng) -> Value {
        for _ in 0..50 {
            let v = self.generate(schema, rng);
            if !v.is_null() {
                return v;
            }
        }
        panic!("{schema} only yields null")
    }

    fn matches(&self, pattern: &str, text: &str) -> bool {
        let mut cache = self
            .regexes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let regex = cache.entry(pattern.to_string()).or_insert_with(|| {
            regex::Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"))
        });
        regex.is_match(text)
    }
}

/// RFC 3339 date-time.
const DATE_TIME: &str = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$";

/// `value` with the part at `pointer` (relative) replaced.
fn replace_at(value: &Value, pointer: &str, replacement: Value) -> Value {
    if pointer.is_empty() {
        return replacement;
    }
    let mut out = value.clone();
    if let Some(slot) = out.pointer_mut(pointer) {
        *slot = replacement;
    }
    out
}

/// The field path below the root (`.` is the root).
fn strip_root(field: &str) -> &str {
    if field == "." { "" } else { field }
}

/// `parent.name`, or `name` at the root.
fn join(parent: &str, name: &str) -> String {
    match strip_root(parent) {
        "" => name.to_string(),
        p => format!("{p}.{name}"),
    }
}

fn required(s: &Value) -> Vec<&str> {
    s["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn counts(s: &Value, min: &str, max: &str) -> (usize, usize) {
    (
        s[min].as_u64().map_or(0, to_usize),
        s[max].as_u64().map_or(usize::MAX, to_usize),
    )
}

/// The types a schema names (`type` as a string or a list), if it names any.
fn types(s: &Value) -> Option<Vec<String>> {
    match &s["type"] {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        _ => None,
    }
}

/// One of the schema's types: `null` one time in five when it is allowed.
fn pick_type(s: &Value, rng: &mut fastrand::Rng) -> String {
    let all = types(s).unwrap_or_else(|| {
        vec![
            if s["properties"].is_object() {
                "object"
            } else {
                "string"
            }
            .to_string(),
        ]
    });
    let present: Vec<&String> = all.iter().filter(|t| *t != "null").collect();
    if present.is_empty() || (all.len() > present.len() && rng.u8(..5) == 0) {
        return "null".into();
    }
    present[rng.usize(..present.len())].clone()
}

fn kind_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true,
    }
}

/// An integer within the schema's bounds (or its format's): often a bound itself.
fn integer(s: &Value, rng: &mut fastrand::Rng) -> Value {
    let (lo_format, hi_format) = match s["format"].as_str() {
        Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    };
    let lo = s["minimum"].as_i64().unwrap_or(lo_format);
    let hi = s["maximum"].as_i64().unwrap_or(hi_format);
    let near = (lo.max(-1000), hi.min(lo.max(-1000).saturating_add(1000)));
    json!(match rng.u8(..4) {
        0 => lo,
        1 => hi,
        _ => rng.i64(near.0..=near.1),
    })
}

/// A string matching `pattern` (anchors are implied).
fn from_regex(pattern: &str, rng: &mut fastrand::Rng) -> String {
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    let body = body.strip_suffix('$').unwrap_or(body);
    let strategy = proptest::string::string_regex(body)
        .unwrap_or_else(|e| panic!("cannot generate from pattern {pattern}: {e}"));
    let mut seed = [0u8; 32];
    for b in &mut seed {
        *b = rng.u8(..);
    }
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    match strategy.new_tree(&mut runner) {
        Ok(tree) => tree.current(),
        Err(e) => panic!("cannot generate from pattern {pattern}: {e}"),
    }
}

/// Text of `min..=max` characters: printable ASCII with some non-ASCII letters.
fn random_text(rng: &mut fastrand::Rng, min: usize, max: usize) -> String {
    const EXTRA: [char; 4] = ['é', 'ß', '日', '🗳'];
    let n = rng.usize(min..=max.max(min));
    (0..n)
        .map(|_| {
            if rng.u8(..10) == 0 {
                EXTRA[rng.usize(..EXTRA.len())]
            } else {
                char::from(rng.u8(b' '..=b'~'))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        Contract::new(json!({
            "components": { "schemas": {
                "Entry": { "type": "object", "required": ["id"], "additionalProperties": false, "properties": {
                    "id": { "type": "string", "pattern": "^[a-z]{1,8}$", "minLength": 1, "maxLength": 8 },
                    "n": { "type": ["integer", "null"], "minimum": 1, "maximum": 9 },
                }},
                "Request": { "type": "object", "required": ["entries"], "additionalProperties": false, "properties": {
                    "entries": { "type": "array", "minItems": 1, "maxItems": 3, "items": { "$ref": "#/components/schemas/Entry" } },
                    "targets": { "type": "object", "minProperties": 1, "propertyNames": { "pattern": "^[a-z]+$" }, "additionalProperties": { "type": "integer", "minimum": 1, "maximum": 5 } },
                }},
            }},
        }))
    }

    #[test]
    fn generated_instances_conform() {
        let c = contract();
        let schema = json!({ "$ref": "#/components/schemas/Request" });
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let v = c.generate(&schema, &mut rng);
            assert_eq!(c.conforms(&schema, &v), Ok(()), "{v}");
        }
    }

    #[test]
    fn every_violation_breaks_the_schema_where_it_says() {
        let c = contract();
        let schema = json!({ "$ref": "#/components/schemas/Request" });
        let valid = json!({ "entries": [{ "id": "abc", "n": 3 }], "targets": { "web": 2 } });
        assert_eq!(c.conforms(&schema, &valid), Ok(()));
        let mut rng = fastrand::Rng::with_seed(7);
        let violations = c.violations(&schema, &valid, &mut rng);
        for v in &violations {
            assert!(
                c.conforms(&schema, &v.value).is_err(),
                "{} {} still conforms: {}",
                v.field,
                v.keyword,
                v.value
            );
        }
        let seen: Vec<(String, String)> = violations
            .iter()
            .map(|v| (v.field.clone(), v.keyword.clone()))
            .collect();
        for expected in [
            (".", "required"),
            ("unexpected", "additionalProperties"),
            ("entries", "minItems"),
            ("entries", "maxItems"),
            ("entries[0].id", "pattern"),
            ("entries[0].id", "maxLength"),
            ("entries[0].id", "minLength"),
            ("entries[0].n", "minimum"),
            ("entries[0].n", "maximum"),
            ("entries[0]", "required"),
            ("targets", "minProperties"),
            ("targets.Bad Name", "propertyNames"),
            ("targets.web", "maximum"),
            ("targets.web", "type"),
        ] {
            assert!(
                seen.contains(&(expected.0.to_string(), expected.1.to_string())),
                "{expected:?} missing from {seen:?}"
            );
        }
    }

    #[test]
    fn targets_fill_and_encode_parameters() {
        let op = Operation {
            method: "delete".into(),
            path: "/cache/{pattern}".into(),
            parameters: vec![
                Parameter {
                    name: "pattern".into(),
                    location: "path".into(),
                    required: true,
                    schema: json!({}),
                },
                Parameter {
                    name: "limit".into(),
                    location: "query".into(),
                    required: false,
                    schema: json!({}),
                },
            ],
            body: None,
            statuses: vec![200],
            security: vec![],
        };
        let values = json!({ "pattern": "https://a/b*", "limit": 5 });
        assert_eq!(
            op.target(values.as_object().unwrap_or(&Map::new())),
            "/cache/https%3A%2F%2Fa%2Fb%2A?limit=5"
        );
    }
}
