//! The replay as a self-contained HTML page: the offered rate against each strategy's ready
//! capacity, and each strategy's pods, as inline SVG (no scripts, nothing fetched).

use std::fmt::Write as _;

use super::surge::Surge;
use super::{Outcome, Sample, table};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 70.0;
const BOTTOM: f64 = 30.0;
const COLOURS: [&str; 3] = ["#d62728", "#2ca02c", "#1f77b4"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One polyline through `points` (t in seconds, value), scaled to the plot.
fn line(points: impl Iterator<Item = (u64, f64)>, end: f64, top: f64, colour: &str) -> String {
    let mut d = String::new();
    for (t, v) in points {
        let x = LEFT + (t as f64 / end) * (WIDTH - LEFT - 10.0);
        let y = HEIGHT - BOTTOM - (v.min(top) / top) * (HEIGHT - BOTTOM - 10.0);
        let _ = write!(d, "{x:.1},{y:.1} ");
    }
    format!("<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{d}\"/>")
}

fn axes(end: f64, top: f64, unit: &str) -> String {
    let mut svg = String::new();
    let (x0, y0) = (LEFT, HEIGHT - BOTTOM);
    let _ = write!(
        svg,
        "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"#444\"/>\
         <line x1=\"{x0}\" y1=\"10\" x2=\"{x0}\" y2=\"{y0}\" stroke=\"#444\"/>",
        WIDTH - 10.0
    );
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let y = y0 - (v / top) * (HEIGHT - BOTTOM - 10.0);
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v:.0}</text>",
            x0 - 4.0,
            y + 4.0
        );
    }
    let hours = end / 3600.0;
    let step = if hours > 6.0 { 2.0 } else { 0.5 };
    let mut h = 0.0;
    while h <= hours + 1e-9 {
        let x = LEFT + (h * 3600.0 / end) * (WIDTH - LEFT - 10.0);
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{h}h</text>",
            y0 + 16.0
        );
        h += step;
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"10\" font-size=\"11\">{}</text>",
        LEFT + 6.0,
        escape(unit)
    );
    svg
}

fn plot(
    outcomes: &[Outcome],
    end: f64,
    unit: &str,
    value: impl Fn(&Sample) -> f64,
    load: bool,
) -> String {
    let top = if load {
        // Capacity far above the load says nothing more: the plot goes to twice the peak
        // offered rate, and higher capacity runs along its top.
        2.0 * outcomes
            .iter()
            .flat_map(|o| o.samples.iter().map(|s| s.load))
            .fold(1.0, f64::max)
    } else {
        1.05 * outcomes
            .iter()
            .flat_map(|o| o.samples.iter().map(&value))
            .fold(1.0, f64::max)
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\">{}",
        axes(end, top, unit)
    );
    if load && let Some(first) = outcomes.first() {
        svg.push_str(&line(
            first.samples.iter().map(|s| (s.t, s.load)),
            end,
            top,
            "#000",
        ));
    }
    for (o, colour) in outcomes.iter().zip(COLOURS) {
        svg.push_str(&line(
            o.samples.iter().map(|s| (s.t, value(s))),
            end,
            top,
            colour,
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The page.
pub fn html(surge: &Surge, outcomes: &[Outcome]) -> String {
    let end = surge.duration().as_secs_f64().max(1.0);
    let mut legend = String::from("<p><span style=\"color:#000\">■ offered requests/s</span> ");
    for (o, colour) in outcomes.iter().zip(COLOURS) {
        let _ = write!(
            legend,
            "<span style=\"color:{colour}\">■ {}</span> ",
            o.strategy.name()
        );
    }
    legend.push_str("</p>");
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{name}</title></head>\
         <body style=\"font-family:sans-serif\"><h1>{name}</h1><p>{description}</p>\
         <pre>{table}</pre>{legend}\
         <h2>Offered rate and ready capacity (requests/s)</h2>{capacity}\
         <h2>Pods</h2>{pods}</body></html>",
        name = escape(&surge.name),
        description = escape(&surge.description),
        table = escape(&table(surge, outcomes)),
        capacity = plot(outcomes, end, "req/s", |s| s.capacity, true),
        pods = plot(outcomes, end, "pods", |s| f64::from(s.pods), false),
    )
}

#[cfg(test)]
mod tests {
    use super::super::{Strategy, simulate};
    use super::*;

    #[test]
    fn the_page_has_a_line_per_strategy_and_escapes_names() {
        let s = Surge::from_toml(
            "name = 'a <b> & c'\ntraffic = [{ at = '0s', rps = 10.0 }, { at = '1h', rps = 10.0 }]",
        )
        .expect("surge");
        let outcomes: Vec<Outcome> = Strategy::ALL.iter().map(|&st| simulate(&s, st)).collect();
        let page = html(&s, &outcomes);
        assert!(page.contains("<h1>a &lt;b&gt; &amp; c</h1>"));
        // Load plus three capacities, then three pod lines.
        assert_eq!(page.matches("<polyline").count(), 7);
        assert!(page.contains("predictive"));
    }
}
