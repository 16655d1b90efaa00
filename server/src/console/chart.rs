//! The overview's small charts, drawn on the server as SVG: no script, nothing to load.
//! Colours come from classes in console.css (the CSP allows no inline style).
//! Only numbers and fixed words go into the markup.

use std::fmt::Write as _;

use crate::store::{Activity, AttemptOutcome, Millis};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
/// The outcomes of attempts, bottom to top (a failure of this machine is drawn as a
/// failure).
const OUTCOMES: [AttemptOutcome; 5] = [
    AttemptOutcome::Delivered,
    AttemptOutcome::Skipped,
    AttemptOutcome::Throttled,
    AttemptOutcome::Failed,
    AttemptOutcome::Disabled,
];

/// Stacked bars of attempts per bucket by outcome, over `[from, from + buckets * size)`.
pub fn outcomes(activity: &Activity, from: Millis, size: Millis, buckets: usize) -> String {
    let mut counts = vec![[0u64; OUTCOMES.len()]; buckets];
    for (start, outcome, n) in &activity.counts {
        let Some(slot) = bucket_index(*start, from, size, buckets) else {
            continue;
        };
        let drawn = match outcome {
            AttemptOutcome::Local => AttemptOutcome::Failed,
            other => *other,
        };
        let kind = OUTCOMES.iter().position(|o| *o == drawn).unwrap_or(3);
        counts[slot][kind] += n;
    }
    let peak = counts
        .iter()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let scale = HEIGHT / peak.max(1) as f64;
    let width = WIDTH / buckets as f64;
    let mut svg = open(&format!("attempts per bucket, peak {peak}"));
    for (i, stack) in counts.iter().enumerate() {
        let mut top = HEIGHT;
        for (kind, n) in stack.iter().enumerate().filter(|(_, n)| **n > 0) {
            let height = *n as f64 * scale;
            top -= height;
            let _ = write!(
                svg,
                r#"<rect class="o-{}" x="{:.1}" y="{top:.1}" width="{:.1}" height="{height:.1}"/>"#,
                OUTCOMES[kind],
                i as f64 * width,
                (width - 0.5).max(0.5),
            );
        }
    }
    close(svg, peak)
}

/// p50 and p99 of attempt durations per bucket, as two lines.
pub fn latency(activity: &Activity, from: Millis, size: Millis, buckets: usize) -> String {
    let mut durations: Vec<Vec<u64>> = vec![Vec::new(); buckets];
    for (at, duration) in &activity.durations {
        if let Some(slot) = bucket_index(*at, from, size, buckets) {
            durations[slot].push(*duration);
        }
    }
    let lines: Vec<Vec<Option<u64>>> = [50, 99]
        .iter()
        .map(|p| durations.iter_mut().map(|d| percentile(d, *p)).collect())
        .collect();
    let peak = lines.iter().flatten().flatten().copied().max().unwrap_or(0);
    let scale = HEIGHT / peak.max(1) as f64;
    let width = WIDTH / buckets as f64;
    let mut svg = open(&format!("p50 and p99 latency, peak {peak} ms"));
    for (line, class) in lines.iter().zip(["p50", "p99"]) {
        let points: Vec<String> = line
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .map(|(i, v)| {
                let x = (i as f64 + 0.5) * width;
                format!("{x:.1},{:.1}", HEIGHT - v as f64 * scale)
            })
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="{class}" points="{}"/>"#,
            points.join(" ")
        );
        // A lone minute has no line to draw: every point is marked too.
        for point in &points {
            let (x, y) = point.split_once(',').unwrap_or_default();
            let _ = write!(svg, r#"<circle class="{class}" cx="{x}" cy="{y}" r="2"/>"#);
        }
    }
    close(svg, peak)
}

/// The `p`th percentile (nearest rank) of `values`, sorting them.
pub fn percentile(values: &mut [u64], p: usize) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (p * values.len()).div_ceil(100).max(1);
    Some(values[rank - 1])
}

fn bucket_index(at: Millis, from: Millis, size: Millis, buckets: usize) -> Option<usize> {
    let slot = (at - from).div_euclid(size.max(1));
    usize::try_from(slot).ok().filter(|slot| *slot < buckets)
}

fn open(label: &str) -> String {
    format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {}" role="img" aria-label="{label}">"#,
        HEIGHT + 14.0
    )
}

fn close(mut svg: String, peak: u64) -> String {
    let _ = write!(
        svg,
        r#"<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/><text x="2" y="{}">peak {peak}</text></svg>"#,
        HEIGHT + 12.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut values: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut values, 50), Some(50));
        assert_eq!(percentile(&mut values, 99), Some(99));
        assert_eq!(percentile(&mut [7], 99), Some(7));
        assert_eq!(percentile(&mut [], 50), None);
    }

    #[test]
    fn bars_stack_by_outcome_within_the_window() {
        let activity = Activity {
            counts: vec![
                (0, AttemptOutcome::Delivered, 3),
                (0, AttemptOutcome::Failed, 1),
                (60_000, AttemptOutcome::Delivered, 4),
                (-60_000, AttemptOutcome::Delivered, 9),
            ],
            ..Activity::default()
        };
        let svg = outcomes(&activity, 0, 60_000, 2);
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("peak 4"), "{svg}");
    }
}
