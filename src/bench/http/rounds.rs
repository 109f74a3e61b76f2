//! A case's rounds at one concurrency (`--rounds`): the service driven, then pgbench's
//! floors, again and again, each round's figures kept, the row's cells their medians.
//!
//! On a machine shared with the database (and, here, with a host that lends its cores to
//! others), throughput drifts by a third between runs a minute apart: a ratio of two runs
//! far apart in time measures the drift. Ratios are therefore taken within a round (the
//! service and its floor back to back), and the row shows their median, not the ratio of
//! two medians.

use std::time::Duration;

use super::pgbench::PgbenchFloor;

/// The figures of one round, per request (or per pgbench transaction); `None` where not
/// measured.
#[derive(Default)]
pub struct Round {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub server_us: Option<f64>,
    pub db_us: Option<f64>,
    pub client_us: Option<f64>,
    pub machine_us: Option<f64>,
    pub pgbench: Option<PgbenchFloor>,
    pub pgbench_one: Option<PgbenchFloor>,
}

/// Microseconds per request of `cpu` over `requests` (`None` when nothing was measured).
pub fn per_request(cpu: Option<Duration>, requests: usize) -> Option<f64> {
    cpu.filter(|_| requests > 0)
        .map(|cpu| cpu.as_secs_f64() * 1e6 / requests as f64)
}

/// The median of the values given (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The median over `rounds` of what `value` reads from each, as a cell with `decimals`
/// ("–" when no round measured it).
fn cell(rounds: &[Round], decimals: usize, value: impl Fn(&Round) -> Option<f64>) -> String {
    match median(rounds.iter().filter_map(value).collect()) {
        Some(v) => format!("{v:.decimals$}"),
        None => "–".to_owned(),
    }
}

/// The service's median cells: req/s, p50, p99, and its server's, the database's, the
/// load generator's and the whole machine's CPU per request.
pub fn service_cells(rounds: &[Round]) -> String {
    [
        cell(rounds, 0, |r| Some(r.rate)),
        cell(rounds, 1, |r| Some(r.p50_ms)),
        cell(rounds, 1, |r| Some(r.p99_ms)),
        cell(rounds, 0, |r| r.server_us),
        cell(rounds, 0, |r| r.db_us),
        cell(rounds, 0, |r| r.client_us),
        cell(rounds, 0, |r| r.machine_us),
    ]
    .join(" | ")
}

/// A pgbench floor's median cells (`floor` picks which one from a round): its tps, the
/// service's rate over it within each round, its backends' CPU and its own per transaction.
pub fn pgbench_cells(rounds: &[Round], floor: impl Fn(&Round) -> Option<&PgbenchFloor>) -> String {
    let us = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e6);
    [
        cell(rounds, 0, |r| floor(r).map(|p| p.tps)),
        cell(rounds, 2, |r| floor(r).map(|p| r.rate / p.tps.max(1e-9))),
        cell(rounds, 0, |r| floor(r).and_then(|p| us(p.db_cpu))),
        cell(rounds, 0, |r| floor(r).and_then(|p| us(p.client_cpu))),
    ]
    .join(" | ")
}

/// The median service rate over `rounds`.
pub fn rate(rounds: &[Round]) -> f64 {
    median(rounds.iter().map(|r| r.rate).collect()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(rate: f64, tps: Option<f64>) -> Round {
        Round {
            rate,
            pgbench: tps.map(|tps| PgbenchFloor {
                tps,
                db_cpu: None,
                client_cpu: None,
            }),
            ..Round::default()
        }
    }

    #[test]
    fn a_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn a_ratio_is_taken_within_each_round_then_its_median_shown() {
        // Throughput drifting by half between rounds: within each round the service runs at
        // half its floor, and that is the ratio shown (the ratio of the medians would be
        // 1.0 / 1.5 = 0.67).
        let rounds = [
            round(1000.0, Some(2000.0)),
            round(500.0, Some(1000.0)),
            round(1500.0, Some(3000.0)),
        ];
        let cells = pgbench_cells(&rounds, |r| r.pgbench.as_ref());
        assert_eq!(cells, "2000 | 0.50 | – | –");
        assert_eq!(rate(&rounds), 1000.0);
    }

    #[test]
    fn a_floor_no_round_measured_shows_dashes() {
        let rounds = [round(1000.0, None)];
        assert_eq!(
            pgbench_cells(&rounds, |r| r.pgbench.as_ref()),
            "– | – | – | –"
        );
    }
}
