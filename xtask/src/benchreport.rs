//! `cargo xtask bench`'s numbers: samples, their medians and spreads, the table
//! and the JSON file.

use std::path::Path;

use crate::Result;

#[derive(Default, Clone)]
pub(crate) struct Sample {
    pub(crate) values: Vec<f64>,
}

impl Sample {
    pub(crate) fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    pub(crate) fn spread(&self) -> (f64, f64) {
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    }
}

/// One line of the table: a measure on Berth and maybe on the other daemon.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) what: String,
    /// `s`, `req/s`, `MB`…
    pub(crate) unit: &'static str,
    pub(crate) berth: Sample,
    pub(crate) other: Option<Sample>,
}

pub(crate) fn fmt(v: f64, unit: &str) -> String {
    match unit {
        "s" => format!("{v:.3}s"),
        "req/s" => format!("{v:.0}/s"),
        _ => format!("{v:.1}{unit}"),
    }
}

pub(crate) fn print_header() {
    println!(
        "{:<10} {:<46} {:>26} {:>26} {:>7}",
        "workload", "what", "berth median (min-max)", "other median (min-max)", "ratio"
    );
}

pub(crate) fn print_row(r: &Row) {
    let (bmin, bmax) = r.berth.spread();
    let bs = format!(
        "{} ({}-{})",
        fmt(r.berth.median(), r.unit),
        fmt(bmin, r.unit),
        fmt(bmax, r.unit)
    );
    let (os, ratio) = match &r.other {
        Some(a) => {
            let (amin, amax) = a.spread();
            (
                format!(
                    "{} ({}-{})",
                    fmt(a.median(), r.unit),
                    fmt(amin, r.unit),
                    fmt(amax, r.unit)
                ),
                format!("{:.2}", r.berth.median() / a.median()),
            )
        }
        None => ("-".into(), "-".into()),
    };
    println!("{:<10} {:<46} {bs:>26} {os:>26} {ratio:>7}", r.name, r.what);
}

pub(crate) fn write_json(path: &Path, rows: &[Row]) -> Result {
    let v: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "workload": r.name, "what": r.what, "unit": r.unit,
                "berth": { "median": r.berth.median(), "runs": r.berth.values },
                "other": r.other.as_ref().map(|a| serde_json::json!({ "median": a.median(), "runs": a.values })),
            })
        })
        .collect();
    std::fs::write(
        path,
        serde_json::to_vec_pretty(&v).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}
