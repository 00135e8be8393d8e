//! The latency-against-load plot: delivery p99 against the offered rate of the
//! direct chat, one line per system, the 50 ms target as a grey line.
//!
//! plotters draws SVG with its own backend and writes text as SVG `<text>`
//! elements that the viewer renders, so no font library or font file is
//! needed here (the `ttf` feature, which would need fontconfig, is off).

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

use crate::results::{ChatFigures, ResultFile};

/// Line colours that stay apart from each other and from the grey target.
const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// One system's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub label: String,
    /// (offered messages/s, delivery p99 ms), by rate.
    pub points: Vec<(f64, f64)>,
}

/// The lines of the direct-chat results: imbox first, then peers by name.
pub fn lines(results: &[ResultFile]) -> Vec<Line> {
    let mut chats: Vec<&ResultFile> = results.iter().filter(|r| r.scenario == "chat").collect();
    chats.sort_by(|a, b| (a.system != "imbox", &a.label).cmp(&(b.system != "imbox", &b.label)));
    chats
        .into_iter()
        .filter_map(|result| {
            let figures: ChatFigures = result.figures().ok()?;
            let mut points: Vec<(f64, f64)> = figures
                .steps
                .iter()
                .filter(|step| step.delivery_latency.count > 0)
                .map(|step| (step.offered_rate as f64, step.delivery_latency.p99_ms.max(0.01)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            (!points.is_empty()).then(|| Line { label: result.label.clone(), points })
        })
        .collect()
}

/// Writes the plot of `results` to `path` (SVG).
pub fn draw(results: &[ResultFile], path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let lines = lines(results);
    let rates = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let p99s = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    // Rates step up by factors of about two, so both axes are logarithmic;
    // the ranges always include 100-10,000 msg/s and 1-100 ms.
    let x_min = rates().fold(100.0, f64::min) / 1.5;
    let x_max = rates().fold(10_000.0, f64::max) * 1.5;
    let y_min = p99s().fold(1.0, f64::min) / 2.0;
    let y_max = p99s().fold(100.0, f64::max) * 2.0;

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Delivery p99 against offered load (direct chat)", ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("offered load (messages per second, log scale)")
        .y_desc("delivery p99 (ms, log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| if *v >= 10.0 { format!("{v:.0}") } else { format!("{v:.1}") })
        .draw()?;

    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(LineSeries::new([(x_min, 50.0), (x_max, 50.0)], grey.stroke_width(2)))?
        .label("target: 50 ms")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), color.stroke_width(2)))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(line.points.iter().map(|&point| Circle::new(point, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Summary;
    use crate::results::StepFigures;

    fn chat(label: &str, system: &str, p99s: &[(u64, f64)]) -> ResultFile {
        let steps = p99s
            .iter()
            .map(|&(rate, p99)| StepFigures {
                offered_rate: rate,
                delivery_latency: Summary { count: 10, p99_ms: p99, ..Summary::default() },
                ..StepFigures::default()
            })
            .collect();
        let figures = ChatFigures { steps, ..ChatFigures::default() };
        ResultFile {
            schema: crate::results::SCHEMA,
            tool: "test".into(),
            scenario: "chat".into(),
            system: system.into(),
            label: label.into(),
            transport: "wss".into(),
            url: None,
            parameters: serde_json::json!({}),
            machine: crate::machine::Machine::this(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_seconds: 0.0,
            generator_cpu_seconds: None,
            server_cpu_seconds: None,
            figures: serde_json::to_value(figures).expect("json"),
        }
    }

    #[test]
    fn the_plot_is_an_svg_with_every_system_named() {
        let results = vec![
            chat("mosquitto", "mqtt", &[(1000, 3.0), (2000, 120.0)]),
            chat("imbox (QUIC)", "imbox", &[(1000, 1.5), (4000, 20.0)]),
        ];
        assert_eq!(lines(&results)[0].label, "imbox (QUIC)");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plot.svg");
        draw(&results, &path).expect("draw");
        let svg = std::fs::read_to_string(&path).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(100)]);
        for text in ["imbox (QUIC)", "mosquitto", "target: 50 ms", "delivery p99"] {
            assert!(svg.contains(text), "{text} missing");
        }
        // No chat results still make a (blank) plot rather than an error.
        draw(&[], &path).expect("empty plot");
    }
}
