//! Span fields for the JSON log lines, kept as JSON object text that a later `record` appends
//! to. `tracing-subscriber`'s own JSON fields parse the object and write it out again on every
//! `record`, which on the request path cost more than answering a cached page; here a record
//! is a few byte copies. A field recorded twice appears twice, and the log line (which reads the
//! object back with serde_json) takes the last value.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::Writer;

/// The fields format of the JSON log layer.
#[derive(Debug, Default, Clone, Copy)]
pub struct AppendJson;

impl<'writer> FormatFields<'writer> for AppendJson {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        writer.write_char('{')?;
        let mut visitor = Members::new(&mut writer, true);
        fields.record(&mut visitor);
        visitor.result?;
        writer.write_char('}')
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let text = &mut current.fields;
        if !text.ends_with('}') {
            text.clear();
            text.push('{');
        } else {
            text.pop();
        }
        let first = text.ends_with('{');
        let mut visitor = Members::new(text, first);
        fields.record(&mut visitor);
        let result = visitor.result;
        text.push('}');
        result
    }
}

/// Writes `"name":value` members, separated by commas.
struct Members<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: Write> Members<'a, W> {
    fn new(out: &'a mut W, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !self.first {
                self.out.write_char(',')?;
            }
            self.first = false;
            string(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

/// `text` as a JSON string.
fn string(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(text)?;
    out.write_char('"')
}

/// Writes what it is given escaped for the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, c) in s.char_indices() {
            let escape = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if c.is_control() => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{:04x}", u32::from(c))?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = at + c.len_utf8();
        }
        self.0.write_str(&s[plain..])
    }
}

impl<W: Write> Visit for Members<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |out| write!(out, "{value}"));
        } else {
            self.member(field, |out| write!(out, "\"{value}\""));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON log line written inside a span that was created with some fields and had
    /// others recorded later (one of them twice).
    fn logged() -> Value {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(false)
                .with_span_list(true)
                .fmt_fields(AppendJson)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                url.path = "/say \"hi\"\n\u{1}",
                n = 7_u64,
                ok = true,
                quoted = ?"say \"x\"",
                nan = f64::NAN,
                late = tracing::field::Empty,
                twice = tracing::field::Empty,
            );
            span.record("late", -3_i64);
            span.record("twice", "first");
            span.record("twice", 2.5_f64);
            let _entered = span.enter();
            let empty = tracing::info_span!("empty", later = tracing::field::Empty);
            empty.record("later", "x");
            let _inner = empty.enter();
            tracing::warn!("inside");
        });
        let bytes = lines.0.lock().expect("lines").clone();
        serde_json::from_slice(&bytes).expect("one JSON line")
    }

    #[test]
    fn fields_recorded_late_or_twice_reach_the_log_line_as_valid_json() {
        let line = logged();
        let spans = line["spans"].as_array().expect("span list");
        assert_eq!(spans.len(), 2, "{line}");
        let request = &spans[0];
        assert_eq!(request["name"], "request");
        assert_eq!(request["url.path"], "/say \"hi\"\n\u{1}");
        assert_eq!(request["n"], 7);
        assert_eq!(request["ok"], true);
        assert_eq!(
            request["quoted"], "\"say \\\"x\\\"\"",
            "Debug output as a string"
        );
        assert_eq!(
            request["nan"], "NaN",
            "a number JSON cannot hold, as a string"
        );
        assert_eq!(request["late"], -3);
        assert_eq!(request["twice"], 2.5, "the last value wins");
        assert_eq!(spans[1]["later"], "x", "a span created without values");
    }
}
